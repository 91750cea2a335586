package goclient

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/smallnest/rpcx/protocol"
	"github.com/smallnest/rpcx/share"
)

// Golden frames of rpcx-protocol.md section 6 (also docs/vectors/rpcx-golden.txt).
var golden = map[string]string{
	"V1.req":  "08000010000000000000000100000031000000054172697468000000034d756c0000000a000000016b00000001760000000f7b2241223a31302c2242223a32307d",
	"V1.res":  "08008010000000000000000100000021000000054172697468000000034d756c00000000000000097b2243223a3230307d",
	"V2.req":  "0800403000000000000000020000001900000000000000000000000000000009d317979cfe362a0000",
	"V2.res":  "0800c03000000000000000020000001900000000000000000000000000000009d317979cfe362a0000",
	"V3.req":  "08002010000000000000000300000027000000054172697468000000034d756c000000000000000f7b2241223a31302c2242223a32307d",
	"V3.push": "0800200000000000000000010000001f0000000450757368000000064e6f74696679000000000000000568656c6c6f",
	"V4.req":  "0800001000000000000000040000002700000005417269746800000003506f77000000000000000f7b2241223a31302c2242223a32307d",
	"V4.res":  "0800811000000000000000040000004900000005417269746800000003506f77000000310000000e5f5f727063785f6572726f725f5f0000001b727063783a2063616e27742066696e64206d6574686f6420506f7700000000",
	"V4b.req": "0800001000000000000000050000001800000003466f6f0000000342617200000000000000027b7d",
	"V4b.res": "0800811000000000000000050000004800000003466f6f00000003426172000000320000000e5f5f727063785f6572726f725f5f0000001c727063783a2063616e27742066696e64207365727669636520466f6f00000000",
	"V5.req":  "08000400000000000000000600000044000000044563686f000000044563686f000000000000002c1f8b08000000000000ffaa1805a360148c8251300a46c1880300000000ffff010000ffffcf34526f00080000",
	"V5.res":  "08008400000000000000000600000044000000044563686f000000044563686f000000000000002c1f8b08000000000000ffaa1805a360148c8251300a46c1880300000000ffff010000ffffcf34526f00080000",
	"V5b.req": "08000400000000000000000900000037000000044563686f000000044563686f000000000000001f1f8b08000000000000ffcac804000000ffff010000ffffac2a93d802000000",
	"V5b.res": "0800800000000000000000090000001a000000044563686f000000044563686f00000000000000026869",
	"V6.req":  "0800001000000000000000070000002600000005417269746800000003446976000000000000000e7b2241223a31302c2242223a307d",
	"V6.res":  "0800811000000000000000070000004300000005417269746800000003446976000000240000000e5f5f727063785f6572726f725f5f0000000e646976696465206279207a65726f000000077b2243223a307d",
	"V7.req":  "08000010000000000000000800000031000000054172697468000000034d756c0000000a000000016b00000001760000000f7b2241223a31302c2242223a32307d",
	"V7.res":  "08008110000000000000000800000048000000054172697468000000034d756c000000300000000e5f5f727063785f6572726f725f5f0000001a7265717565737420726561636865642072617465206c696d697400000000",
}

// goldenMessage decodes a golden frame (decompressing a gzip payload).
func goldenMessage(t *testing.T, name string) *protocol.Message {
	t.Helper()
	b, err := hex.DecodeString(golden[name])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	m, err := protocol.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// encodeHex encodes m with its seq replaced by seq (the golden frames fix the seq, a client's
// counter does not). Metadata must hold at most one key, or the bytes depend on map order.
func encodeHex(m *protocol.Message, seq uint64) string {
	c := copyMessage(m)
	c.SetSeq(seq)
	return hex.EncodeToString(c.Encode())
}

// TestGoldenFrames sends the golden request frames byte for byte (Client.SendRaw keeps their seq
// and flags) and compares the responses with the golden response frames.
func TestGoldenFrames(t *testing.T) {
	cases := []struct {
		req, res string
		// exact: compare the whole response; otherwise the header and the decompressed payload
		// (gzip bytes differ between implementations, rpcx-protocol.md 1.6).
		exact bool
	}{
		{"V1.req", "V1.res", true},
		{"V2.req", "V2.res", true},
		{"V4.req", "V4.res", true},
		{"V4b.req", "V4b.res", true},
		{"V5.req", "V5.res", false},
		{"V5b.req", "V5b.res", true},
		{"V6.req", "V6.res", true},
	}
	for _, tc := range cases {
		runCase(t, strings.TrimSuffix(tc.req, ".req"), func(t *testing.T) {
			wire := &wireLog{}
			c := dial(t, env.addr, options(protocol.JSON), wire)
			req := goldenMessage(t, tc.req)
			// Error responses come back as errors too; only a missing response matters here.
			if _, _, err := c.SendRaw(callContext(t), req); err == context.DeadlineExceeded {
				t.Fatalf("%s: no response: %v", tc.req, err)
			}
			want := goldenMessage(t, tc.res)
			got := wire.response(want.Seq())
			if got == nil {
				t.Fatalf("%s: no response with seq %d", tc.req, want.Seq())
			}
			if tc.exact {
				if h := encodeHex(got, want.Seq()); h != golden[tc.res] {
					t.Fatalf("%s response:\n got  %s\n want %s", tc.req, h, golden[tc.res])
				}
				return
			}
			if !bytes.Equal(got.Header[:], want.Header[:]) {
				t.Fatalf("%s response header % x, want % x", tc.req, got.Header[:], want.Header[:])
			}
			if got.ServicePath != want.ServicePath || got.ServiceMethod != want.ServiceMethod || len(got.Metadata) != 0 {
				t.Fatalf("%s response %s.%s metadata %v, want %s.%s and none", tc.req, got.ServicePath, got.ServiceMethod, got.Metadata, want.ServicePath, want.ServiceMethod)
			}
			if !bytes.Equal(got.Payload, want.Payload) {
				t.Fatalf("%s response payload (%d bytes) differs from the golden one (%d bytes)", tc.req, len(got.Payload), len(want.Payload))
			}
		})
	}

	runCase(t, "V3", func(t *testing.T) {
		// A oneway request gets no response (rpcx-protocol.md 4.5); a later call still does.
		wire := &wireLog{}
		c := dial(t, env.addr, options(protocol.JSON), wire)
		if _, _, err := c.SendRaw(callContext(t), goldenMessage(t, "V3.req")); err != nil {
			t.Fatalf("sending V3.req: %v", err)
		}
		var reply Reply
		if err := c.Call(callContext(t), "Arith", "Mul", &Args{A: 2, B: 3}, &reply); err != nil || reply.C != 6 {
			t.Fatalf("Arith.Mul after a oneway request = %d, %v; want 6", reply.C, err)
		}
		time.Sleep(200 * time.Millisecond)
		if res := wire.response(3); res != nil {
			t.Fatalf("the oneway request V3 got a response: %s", encodeHex(res, 3))
		}
	})
}

// TestGoClientFrames checks that the golden request frames are what the stock Go client sends, so
// that the golden vectors and the other cases speak of the same bytes.
func TestGoClientFrames(t *testing.T) {
	cases := []struct {
		name, path, method string
		meta               map[string]string
		args               any
		req, res           string
	}{
		{"V1", "Arith", "Mul", map[string]string{"k": "v"}, &Args{A: 10, B: 20}, "V1.req", "V1.res"},
		{"V4", "Arith", "Pow", nil, &Args{A: 10, B: 20}, "V4.req", "V4.res"},
		{"V4b", "Foo", "Bar", nil, struct{}{}, "V4b.req", "V4b.res"},
		{"V6", "Arith", "Div", nil, &Args{A: 10, B: 0}, "V6.req", "V6.res"},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			wire := &wireLog{}
			c := dial(t, env.addr, options(protocol.JSON), wire)
			ctx := callContext(t)
			if tc.meta != nil {
				ctx = context.WithValue(ctx, share.ReqMetaDataKey, tc.meta)
			}
			var reply Reply
			_ = c.Call(ctx, tc.path, tc.method, tc.args, &reply) // errors are part of the golden frames
			req, res := wire.exchange(t, tc.path, tc.method)
			seq := goldenMessage(t, tc.req).Seq()
			if h := encodeHex(req, seq); h != golden[tc.req] {
				t.Errorf("request (seq set to %d):\n got  %s\n want %s", seq, h, golden[tc.req])
			}
			if h := encodeHex(res, seq); h != golden[tc.res] {
				t.Errorf("response (seq set to %d):\n got  %s\n want %s", seq, h, golden[tc.res])
			}
		})
	}
}

// TestPayloadBytes checks the encoded argument and reply of each codec, which a server written in
// another language must reproduce (rpcx-protocol.md section 2).
func TestPayloadBytes(t *testing.T) {
	cases := []struct {
		name      string
		st        protocol.SerializeType
		args      Args
		wantArgs  string // hex
		wantReply string // hex
	}{
		{"JSON", protocol.JSON, Args{A: 10, B: 20}, hex.EncodeToString([]byte(`{"A":10,"B":20}`)), hex.EncodeToString([]byte(`{"C":200}`))},
		{"JSON_zero", protocol.JSON, Args{}, hex.EncodeToString([]byte(`{"A":0,"B":0}`)), hex.EncodeToString([]byte(`{"C":0}`))},
		// vmihailenco/msgpack/v5: a map keyed by field name, int64 in the 9-byte 0xd3 form.
		{"MsgPack", protocol.MsgPack, Args{A: 10, B: 20}, "82a141d3000000000000000aa142d30000000000000014", "81a143d300000000000000c8"},
		{"MsgPack_zero", protocol.MsgPack, Args{}, "82a141d30000000000000000a142d30000000000000000", "81a143d30000000000000000"},
		{"Protobuf", protocol.ProtoBuffer, Args{A: 10, B: 20}, "080a1014", "08c801"},
		{"Protobuf_negative", protocol.ProtoBuffer, Args{A: -2, B: 3}, "08feffffffffffffffff011003", "08faffffffffffffffff01"},
		{"Protobuf_zero", protocol.ProtoBuffer, Args{}, "", ""}, // proto3 writes no zero fields
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			wire := &wireLog{}
			c := dial(t, env.addr, options(tc.st), wire)
			var reply Reply
			if err := c.Call(callContext(t), "Arith", "Mul", &tc.args, &reply); err != nil {
				t.Fatalf("Arith.Mul: %v", err)
			}
			req, res := wire.exchange(t, "Arith", "Mul")
			if got := hex.EncodeToString(req.Payload); got != tc.wantArgs {
				t.Errorf("argument bytes %s, want %s", got, tc.wantArgs)
			}
			if got := hex.EncodeToString(res.Payload); got != tc.wantReply {
				t.Errorf("reply bytes %s, want %s", got, tc.wantReply)
			}
			if res.SerializeType() != tc.st || res.MessageStatusType() != protocol.Normal || res.CompressType() != protocol.None {
				t.Errorf("reply header % x: want serialize type %d, status Normal, no compression", res.Header[:], tc.st)
			}
		})
	}
}
