package shaders

// Buf is one buffer of a command list. ReadOnly buffers are not copied back after the run.
type Buf struct {
	Data     []byte
	ReadOnly bool
}

// Bind binds buffer Buf of the list at byte offset Off to the kernel's [[buffer(Index)]].
type Bind struct {
	Index, Buf, Off int
}

// Dispatch is one kernel launch: its name, argument struct bytes (buffer index 0), grid and
// buffer bindings.
type Dispatch struct {
	Kernel string
	Args   []byte
	Grid   Grid
	Binds  []Bind
}

// Emulator executes the kernels of this package without a GPU. The Metal backend runs on one
// through metal.NewEmulated, which is how its own code is tested on machines without Metal; the
// CPU harness of shaders/shim (shim.Harness) is the implementation. Keeping the interface here
// lets the backend use an emulator without linking the harness, which builds and runs C++.
type Emulator interface {
	// Run executes the dispatches of list in order over bufs, each seeing the writes of the
	// ones before it, and writes the results back into the Data of the buffers that are not
	// ReadOnly.
	Run(bufs []Buf, list []Dispatch) error
}
