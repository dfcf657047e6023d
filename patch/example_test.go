package patch_test

import (
	"fmt"

	"github.com/bankai-metal/bankai-metal/patch"
)

func ExampleParse() {
	// An upstream runner-shaped file: no version, format or stats; a GGUF projection alias.
	data := []byte(`{
  "name": "demo",
  "description": "two rows and a group",
  "base_model": "prism-ml/Bonsai-8B-gguf",
  "flips": [
    {"layer": 34, "proj": "gate_proj", "row": 11737},
    {"layer": 2, "proj": "ffn_up", "row": 7021},
    {"layer": 34, "proj": "up_proj", "row": 3555, "group": 3}
  ],
  "metadata": {"max_iters": 800}
}`)
	p, err := patch.Parse(data, "demo")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Name, "read as", p.Variant)
	for _, f := range p.Flips {
		fmt.Println(f.Kind(), f)
	}
	fmt.Printf("upstream's nominal stats: %+v\n", p.StatsNominal())

	_, err = patch.Parse([]byte(`{"flips": [{"layer": 1, "proj": "up_proj", "row": "7"}]}`), "bad")
	fmt.Println(err)
	// Output:
	// demo read as runner (no format key)
	// row L34.gate_proj row 11737
	// row L2.up_proj row 7021
	// group L34.up_proj row 3555 group 3
	// upstream's nominal stats: {BitsFlipped:12288 SizeBytes:36}
	// patch: bad: flip 0: field "row": got string, want an integer
}

func ExampleStack() {
	a := &patch.Patch{Name: "a", Flips: []patch.Flip{
		patch.RowFlip(1, "up_proj", 10),
		patch.RowFlip(1, "up_proj", 11),
	}}
	b := &patch.Patch{Name: "b", Flips: []patch.Flip{
		patch.RowFlip(1, "up_proj", 11),    // also in a: cancels
		patch.BitFlip(1, "up_proj", 10, 5), // inside a's row 10: that bit ends up unflipped
		patch.GroupFlip(3, "down_proj", 0, 95),
	}}
	s, cancelled, err := patch.Stack(b, a)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Name)
	for _, f := range s.Flips {
		fmt.Println("keep  ", f)
	}
	for _, f := range cancelled {
		fmt.Println("cancel", f)
	}
	// Output:
	// a+b
	// keep   L1.up_proj row 10
	// keep   L1.up_proj row 10 col 5
	// keep   L3.down_proj row 0 group 95
	// cancel L1.up_proj row 10 col 5
	// cancel L1.up_proj row 11
}
