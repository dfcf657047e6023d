//go:build !darwin || nometal

package metal

import (
	"errors"
	goruntime "runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnavailable(t *testing.T) {
	err := Available()
	require.True(t, errors.Is(err, ErrUnavailable))
	require.ErrorContains(t, err, "metal: Metal is not available on "+goruntime.GOOS+"/"+goruntime.GOARCH)
	b, err := New(nil)
	require.Nil(t, b)
	require.ErrorIs(t, err, ErrUnavailable)
	k, err := NewKernelRunner()
	require.Nil(t, k)
	require.ErrorIs(t, err, ErrUnavailable)
}
