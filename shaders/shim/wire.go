package shim

import (
	"encoding/binary"
	"fmt"

	"github.com/bankai-metal/bankai-metal/shaders"
)

// The command-list format of harness.cpp (see its header comment).

const magic = 0x4c434b42 // "BKCL"

func encode(bufs []shaders.Buf, list []shaders.Dispatch) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, magic)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, uint32(len(bufs)))
	for _, x := range bufs {
		b = le.AppendUint64(b, uint64(len(x.Data)))
		b = append(b, x.Data...)
	}
	b = le.AppendUint32(b, uint32(len(list)))
	for _, d := range list {
		b = le.AppendUint32(b, uint32(len(d.Kernel)))
		b = append(b, d.Kernel...)
		b = le.AppendUint32(b, uint32(len(d.Args)))
		b = append(b, d.Args...)
		for _, v := range d.Grid.Groups {
			b = le.AppendUint32(b, uint32(v))
		}
		for _, v := range d.Grid.Threads {
			b = le.AppendUint32(b, uint32(v))
		}
		b = le.AppendUint32(b, uint32(d.Grid.TGMem))
		b = le.AppendUint32(b, uint32(len(d.Binds)))
		for _, x := range d.Binds {
			b = le.AppendUint32(b, uint32(x.Index))
			b = le.AppendUint32(b, uint32(x.Buf))
			b = le.AppendUint64(b, uint64(x.Off))
		}
	}
	return b
}

func decode(data []byte, bufs []shaders.Buf) error {
	le := binary.LittleEndian
	if len(data) < 8 || le.Uint32(data) != magic || int(le.Uint32(data[4:])) != len(bufs) {
		return fmt.Errorf("shim: harness output: bad header")
	}
	data = data[8:]
	for i, x := range bufs {
		if len(data) < 8 || le.Uint64(data) != uint64(len(x.Data)) || uint64(len(data)-8) < le.Uint64(data) {
			return fmt.Errorf("shim: harness output: buffer %d: bad length", i)
		}
		n := len(x.Data)
		if !x.ReadOnly {
			copy(x.Data, data[8:8+n])
		}
		data = data[8+n:]
	}
	return nil
}
