package main

import (
	"encoding/hex"
	"testing"

	"github.com/smallnest/rpcx/codec"
)

// TestReplyEncoding checks that Reply encodes as the contract says with each rpcx codec, zero value
// included (JSON must stay {"C":0}, not {}).
func TestReplyEncoding(t *testing.T) {
	cases := []struct {
		name  string
		codec codec.Codec
		reply Reply
		want  string // hex
	}{
		{"JSON", codec.JSONCodec{}, Reply{C: 200}, hex.EncodeToString([]byte(`{"C":200}`))},
		{"JSON_zero", codec.JSONCodec{}, Reply{}, hex.EncodeToString([]byte(`{"C":0}`))},
		{"MsgPack", codec.MsgpackCodec{}, Reply{C: 200}, "81a143d300000000000000c8"},
		{"Protobuf", codec.PBCodec{}, Reply{C: 200}, "08c801"},
		{"Protobuf_negative", codec.PBCodec{}, Reply{C: -6}, "08faffffffffffffffff01"},
		{"Protobuf_zero", codec.PBCodec{}, Reply{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.codec.Encode(&tc.reply)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tc.want {
				t.Fatalf("encoded %s, want %s", got, tc.want)
			}
			var back Reply
			if err := tc.codec.Decode(b, &back); err != nil || back != tc.reply {
				t.Fatalf("decoded %+v, %v; want %+v", back, err, tc.reply)
			}
		})
	}
}

// TestArgsProtobuf checks the ProtoArgs layout and that unknown fields are skipped.
func TestArgsProtobuf(t *testing.T) {
	b, err := codec.PBCodec{}.Encode(&Args{A: 10, B: 20})
	if err != nil || hex.EncodeToString(b) != "080a1014" {
		t.Fatalf("encoded %x, %v; want 080a1014", b, err)
	}
	// Field 3 (a string) is unknown; field 1 given twice: the last one wins.
	in, _ := hex.DecodeString("0801" + "1a03616263" + "1014" + "080a")
	var a Args
	if err := (codec.PBCodec{}).Decode(in, &a); err != nil || a != (Args{A: 10, B: 20}) {
		t.Fatalf("decoded %+v, %v; want {A:10 B:20}", a, err)
	}
}
