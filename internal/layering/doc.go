// Package layering holds the test that every package imports only packages below it, and that
// the shipped binary links no test machinery.
package layering
