package goclient

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// clientCall is one call in flight and the payload it should get back.
type clientCall struct {
	call  *client.Call
	reply []byte
	want  []byte
}

// TestGzip echoes payloads with CompressType = Gzip (rpcx-protocol.md 1.6, 4.8): the Go client
// compresses a request payload only above 1024 bytes, and the server compresses its reply with the
// request's compress type only above 1024 bytes.
func TestGzip(t *testing.T) {
	cases := []struct {
		name    string
		payload []byte
	}{
		{"100B", bytes.Repeat([]byte("small "), 17)[:100]},
		{"1024B", bytes.Repeat([]byte("x"), 1024)},
		{"1025B", bytes.Repeat([]byte("x"), 1025)},
		{"2048B_text", bytes.Repeat([]byte("x"), 2048)},
		{"64KiB_text", bytes.Repeat([]byte("rpcx gzip payload "), 64<<10/18+1)[:64<<10]},
		{"1MiB_random", randomBytes(1<<20, 1)},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			wire := &wireLog{}
			opt := options(protocol.SerializeNone)
			opt.CompressType = protocol.Gzip
			c := dial(t, env.addr, opt, wire)
			var reply []byte
			if err := c.Call(callContext(t), "Echo", "Echo", tc.payload, &reply); err != nil {
				t.Fatalf("Echo.Echo: %v", err)
			}
			if !bytes.Equal(reply, tc.payload) {
				t.Fatalf("Echo.Echo returned %d bytes, not the %d sent", len(reply), len(tc.payload))
			}
			req, res := wire.exchange(t, "Echo", "Echo")
			want := protocol.None
			if len(tc.payload) > 1024 {
				want = protocol.Gzip
			}
			if req.CompressType() != want {
				t.Errorf("request compress type %d, want %d", req.CompressType(), want)
			}
			if res.CompressType() != want {
				t.Errorf("response compress type %d, want %d (compress only above 1024 bytes)", res.CompressType(), want)
			}
		})
	}
}

// TestPayloadSize echoes raw payloads from empty to 8 MiB and checks every byte.
func TestPayloadSize(t *testing.T) {
	cases := []struct {
		name string
		size int
	}{
		{"0B", 0},
		{"1B", 1},
		{"64KiB", 64 << 10},
		{"1MiB", 1 << 20},
		{"8MiB", 8 << 20},
	}
	for i, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			wire := &wireLog{}
			c := dial(t, env.addr, options(protocol.SerializeNone), wire)
			payload := randomBytes(tc.size, uint64(i+10))
			var reply []byte
			if err := c.Call(callContext(t), "Echo", "Echo", payload, &reply); err != nil {
				t.Fatalf("Echo.Echo(%d bytes): %v", tc.size, err)
			}
			if !bytes.Equal(reply, payload) {
				t.Fatalf("Echo.Echo returned %d bytes that differ from the %d sent", len(reply), len(payload))
			}
			if _, res := wire.exchange(t, "Echo", "Echo"); res.CompressType() != protocol.None || res.MessageStatusType() != protocol.Normal {
				t.Errorf("response header % x: want no compression, status Normal", res.Header[:])
			}
		})
	}

	runCase(t, "pipelined_mixed_sizes", func(t *testing.T) {
		// Many calls of different sizes in flight on one connection; replies may come back in any
		// order and are matched by seq (rpcx-protocol.md 4.1, 5).
		c := dial(t, env.addr, options(protocol.SerializeNone), nil)
		ctx := callContext(t)
		const n = 64
		calls := make([]*clientCall, n)
		for i := range n {
			payload := randomBytes(i*4093, uint64(100+i))
			calls[i] = &clientCall{want: payload}
			calls[i].call = c.Go(ctx, "Echo", "Echo", payload, &calls[i].reply, make(chan *client.Call, 1))
		}
		for i, cc := range calls {
			if err := wait(t, cc.call).Error; err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if !bytes.Equal(cc.reply, cc.want) {
				t.Fatalf("call %d: reply of %d bytes differs from the %d sent", i, len(cc.reply), len(cc.want))
			}
		}
	})
}
