package goclient

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smallnest/rpcx/protocol"
	"github.com/smallnest/rpcx/share"
)

// TestMetadata sends request metadata (share.ReqMetaDataKey) to Echo.Echo, which copies it into the
// response metadata, and reads it back from share.ResMetaDataKey (rpcx-protocol.md 1.5, 4.2).
func TestMetadata(t *testing.T) {
	many := map[string]string{}
	for i := range 64 {
		many[fmt.Sprintf("key-%02d", i)] = fmt.Sprintf("value-%d", i*i)
	}
	cases := []struct {
		name string
		meta map[string]string
	}{
		{"one_key", map[string]string{"k": "v"}},
		{"several_keys", map[string]string{"trace-id": "4bf92f3577b34da6", "user": "alice", "empty": ""}},
		{"utf8", map[string]string{"ключ": "значение ✓", "键": "值"}},
		{"long_value", map[string]string{"blob": strings.Repeat("v", 8192)}},
		{"64_keys", many},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			wire := &wireLog{}
			c := dial(t, env.addr, options(protocol.SerializeNone), wire)
			resMeta := map[string]string{}
			ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, maps.Clone(tc.meta))
			ctx = context.WithValue(ctx, share.ResMetaDataKey, resMeta)
			var reply []byte
			if err := c.Call(ctx, "Echo", "Echo", []byte("meta"), &reply); err != nil {
				t.Fatalf("Echo.Echo: %v", err)
			}
			req, res := wire.exchange(t, "Echo", "Echo")
			if !maps.Equal(req.Metadata, tc.meta) {
				t.Errorf("request metadata on the wire %q, want %q", req.Metadata, tc.meta)
			}
			if !maps.Equal(res.Metadata, tc.meta) {
				t.Errorf("response metadata on the wire %q, want %q", res.Metadata, tc.meta)
			}
			for k, v := range tc.meta {
				if got, ok := resMeta[k]; !ok || got != v {
					t.Errorf("share.ResMetaDataKey[%q] = %q, %v; want %q", k, got, ok, v)
				}
			}
			// The client adds the server's address locally (rpcx-protocol.md 3).
			if resMeta[share.ServerAddress] == "" {
				t.Errorf("share.ResMetaDataKey has no %s", share.ServerAddress)
			}
		})
	}

	runCase(t, "none", func(t *testing.T) {
		wire := &wireLog{}
		c := dial(t, env.addr, options(protocol.SerializeNone), wire)
		var reply []byte
		if err := c.Call(callContext(t), "Echo", "Echo", []byte("no meta"), &reply); err != nil {
			t.Fatalf("Echo.Echo: %v", err)
		}
		if _, res := wire.exchange(t, "Echo", "Echo"); len(res.Metadata) != 0 {
			t.Errorf("response metadata %q, want none", res.Metadata)
		}
	})

	runCase(t, "not_echoed_by_Arith", func(t *testing.T) {
		// Request metadata is not copied into responses unless the service does it (4.3).
		wire := &wireLog{}
		c := dial(t, env.addr, options(protocol.JSON), wire)
		ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, map[string]string{"k": "v"})
		var reply Reply
		if err := c.Call(ctx, "Arith", "Mul", &Args{A: 3, B: 4}, &reply); err != nil || reply.C != 12 {
			t.Fatalf("Arith.Mul = %d, %v; want 12", reply.C, err)
		}
		if _, res := wire.exchange(t, "Arith", "Mul"); len(res.Metadata) != 0 {
			t.Errorf("response metadata %q, want none", res.Metadata)
		}
	})

	runCase(t, "XClient", func(t *testing.T) {
		xc := peer2peer(t, "Echo", env.addr, options(protocol.SerializeNone))
		resMeta := map[string]string{}
		ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, map[string]string{"k": "v"})
		ctx = context.WithValue(ctx, share.ResMetaDataKey, resMeta)
		var reply []byte
		if err := xc.Call(ctx, "Echo", []byte("x"), &reply); err != nil {
			t.Fatalf("Echo.Echo: %v", err)
		}
		if resMeta["k"] != "v" {
			t.Errorf("response metadata %q, want k=v", resMeta)
		}
		// The context has a deadline, so the XClient also sent __ServerTimeout, which comes back.
		if resMeta[share.ServerTimeout] == "" {
			t.Errorf("response metadata %q has no %s", resMeta, share.ServerTimeout)
		}
	})
}

// TestServerTimeout checks __ServerTimeout (rpcx-protocol.md 3, 4.9): the XClient sends the time
// left before its context deadline, and the server gives the handler a context with that deadline,
// which Echo.Deadline reports.
func TestServerTimeout(t *testing.T) {
	// deadlineOf calls Echo.Deadline and returns its reply, "none" or the milliseconds left.
	deadlineOf := func(t *testing.T, ctx context.Context, call func(ctx context.Context, reply *[]byte) error) string {
		t.Helper()
		var reply []byte
		if err := call(ctx, &reply); err != nil {
			t.Fatalf("Echo.Deadline: %v", err)
		}
		return string(reply)
	}
	wantMillis := func(t *testing.T, got string, max int64) {
		t.Helper()
		ms, err := strconv.ParseInt(got, 10, 64)
		if err != nil || ms <= 0 || ms > max {
			t.Fatalf("Echo.Deadline = %q, want a number of milliseconds in (0, %d]", got, max)
		}
	}

	runCase(t, "XClient_deadline", func(t *testing.T) {
		xc := peer2peer(t, "Echo", env.addr, options(protocol.SerializeNone))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got := deadlineOf(t, ctx, func(ctx context.Context, reply *[]byte) error {
			return xc.Call(ctx, "Deadline", []byte{}, reply)
		})
		wantMillis(t, got, 2000)
	})

	runCase(t, "XClient_no_deadline", func(t *testing.T) {
		xc := peer2peer(t, "Echo", env.addr, options(protocol.SerializeNone))
		// No deadline on the context, so no __ServerTimeout; XClient.Go lets the case bound the wait.
		var reply []byte
		call, err := xc.Go(context.Background(), "Deadline", []byte{}, &reply, nil)
		if err != nil {
			t.Fatalf("Echo.Deadline: %v", err)
		}
		if err := wait(t, call).Error; err != nil {
			t.Fatalf("Echo.Deadline: %v", err)
		}
		if string(reply) != "none" {
			t.Fatalf("Echo.Deadline = %q, want none", reply)
		}
	})

	runCase(t, "Client.Call_sends_no_timeout", func(t *testing.T) {
		// A plain Client does not turn its context deadline into __ServerTimeout.
		c := dial(t, env.addr, options(protocol.SerializeNone), nil)
		got := deadlineOf(t, callContext(t), func(ctx context.Context, reply *[]byte) error {
			return c.Call(ctx, "Echo", "Deadline", []byte{}, reply)
		})
		if got != "none" {
			t.Fatalf("Echo.Deadline = %q, want none", got)
		}
	})

	runCase(t, "explicit_metadata", func(t *testing.T) {
		c := dial(t, env.addr, options(protocol.SerializeNone), nil)
		ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, map[string]string{share.ServerTimeout: "1500"})
		got := deadlineOf(t, ctx, func(ctx context.Context, reply *[]byte) error {
			return c.Call(ctx, "Echo", "Deadline", []byte{}, reply)
		})
		wantMillis(t, got, 1500)
	})

	runCase(t, "not_a_number_is_ignored", func(t *testing.T) {
		c := dial(t, env.addr, options(protocol.SerializeNone), nil)
		ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, map[string]string{share.ServerTimeout: "soon"})
		got := deadlineOf(t, ctx, func(ctx context.Context, reply *[]byte) error {
			return c.Call(ctx, "Echo", "Deadline", []byte{}, reply)
		})
		if got != "none" {
			t.Fatalf("Echo.Deadline = %q, want none", got)
		}
	})
}
