package goclient

import (
	"testing"
	"time"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// quietPeriod is how long a case waits to be sure that a frame does not come.
const quietPeriod = 300 * time.Millisecond

// TestOneway sends oneway requests (the Go client sets the oneway bit when the reply is nil) and
// checks that the server runs them without answering, not even with an error (rpcx-protocol.md
// 4.5), and that the connection goes on working.
func TestOneway(t *testing.T) {
	cases := []struct {
		name         string
		path, method string
		st           protocol.SerializeType
		args         any
	}{
		{"Arith.Mul", "Arith", "Mul", protocol.JSON, &Args{A: 10, B: 20}},
		{"Echo.Sleep", "Echo", "Sleep", protocol.SerializeNone, []byte("50")},
		{"unknown_service_no_error_reply", "Foo", "Bar", protocol.JSON, &Args{}},
		{"divide_by_zero_no_error_reply", "Arith", "Div", protocol.MsgPack, &Args{A: 1}},
	}
	t.Run("Client.Go_nil_reply", func(t *testing.T) {
		for _, tc := range cases {
			runCase(t, tc.name, func(t *testing.T) {
				wire := &wireLog{}
				c := dial(t, env.addr, options(tc.st), wire)
				call := c.Go(callContext(t), tc.path, tc.method, tc.args, nil, make(chan *client.Call, 1))
				if err := wait(t, call).Error; err != nil {
					t.Fatalf("oneway %s.%s: %v", tc.path, tc.method, err)
				}
				oneway := wire.lastSent(t, tc.path, tc.method)
				if !oneway.IsOneway() {
					t.Fatalf("request header % x has no oneway bit", oneway.Header[:])
				}
				checkStillServes(t, c, tc.st)
				time.Sleep(quietPeriod)
				if res := wire.response(oneway.Seq()); res != nil {
					t.Fatalf("oneway %s.%s got a response: %s", tc.path, tc.method, encodeHex(res, res.Seq()))
				}
			})
		}
	})

	runCase(t, "XClient.Oneshot", func(t *testing.T) {
		wire := &wireLog{}
		xc := peer2peer(t, "Echo", env.addr, options(protocol.SerializeNone))
		xc.GetPlugins().Add(wire)
		if err := xc.Oneshot(callContext(t), "Sleep", []byte("50")); err != nil {
			t.Fatalf("Oneshot Echo.Sleep: %v", err)
		}
		var reply []byte
		if err := xc.Call(callContext(t), "Echo", []byte("after oneshot"), &reply); err != nil || string(reply) != "after oneshot" {
			t.Fatalf("Echo.Echo after Oneshot = %q, %v", reply, err)
		}
		time.Sleep(quietPeriod) // Oneshot sends from its own goroutine: give it time too
		oneway := wire.lastSent(t, "Echo", "Sleep")
		if res := wire.response(oneway.Seq()); res != nil {
			t.Fatalf("Oneshot Echo.Sleep got a response: %s", encodeHex(res, res.Seq()))
		}
	})

	runCase(t, "100_oneway_then_a_call", func(t *testing.T) {
		wire := &wireLog{}
		c := dial(t, env.addr, options(protocol.MsgPack), wire)
		ctx := callContext(t)
		for i := range 100 {
			call := c.Go(ctx, "Arith", "Add", &Args{A: int64(i), B: 1}, nil, make(chan *client.Call, 1))
			if err := wait(t, call).Error; err != nil {
				t.Fatalf("oneway Arith.Add #%d: %v", i, err)
			}
		}
		checkStillServes(t, c, protocol.MsgPack)
		time.Sleep(quietPeriod)
		if n := len(wire.received()); n != 1 {
			t.Fatalf("received %d frames, want only the reply to the last call", n)
		}
	})
}

// checkStillServes fails the case unless a normal call on c succeeds; st is c's serialize type.
func checkStillServes(t *testing.T, c *client.Client, st protocol.SerializeType) {
	t.Helper()
	if st == protocol.SerializeNone {
		var reply []byte
		if err := c.Call(callContext(t), "Echo", "Echo", []byte("still here"), &reply); err != nil || string(reply) != "still here" {
			t.Fatalf("Echo.Echo on the same client = %q, %v; want %q", reply, err, "still here")
		}
		return
	}
	var reply Reply
	if err := c.Call(callContext(t), "Arith", "Mul", &Args{A: 6, B: 7}, &reply); err != nil || reply.C != 42 {
		t.Fatalf("Arith.Mul on the same client = %d, %v; want 42", reply.C, err)
	}
}

// TestHeartbeat runs the Go client's heartbeat (Option.Heartbeat) every 50 ms for a second while
// calls go on, and checks that every heartbeat is echoed (rpcx-protocol.md 4.4: the request frame
// itself, with only the Response bit added) and the connection stays alive.
func TestHeartbeat(t *testing.T) {
	cases := []struct {
		name string
		st   protocol.SerializeType
	}{
		{"JSON_client", protocol.JSON},
		{"MsgPack_client", protocol.MsgPack},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			opt := options(tc.st)
			opt.Heartbeat = true
			opt.HeartbeatInterval = 50 * time.Millisecond
			// A heartbeat not answered in time makes the client close the connection.
			opt.MaxWaitForHeartbeat = 2 * time.Second
			wire := &wireLog{}
			c := dial(t, env.addr, opt, wire)

			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				checkStillServes(t, c, tc.st)
				time.Sleep(50 * time.Millisecond)
			}
			var beats []*protocol.Message
			for _, m := range wire.sentFrames() {
				if m.IsHeartbeat() {
					beats = append(beats, m)
				}
			}
			if len(beats) < 10 {
				t.Fatalf("%d heartbeats sent in 1 s at a 50 ms interval, want at least 10", len(beats))
			}
			for _, hb := range beats {
				if hb.SerializeType() != protocol.MsgPack {
					t.Fatalf("heartbeat serialize type %d, want MsgPack (3)", hb.SerializeType())
				}
				res := wire.response(hb.Seq())
				for end := time.Now().Add(2 * time.Second); res == nil && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond) // the last replies may still be on their way
					res = wire.response(hb.Seq())
				}
				if res == nil {
					t.Fatalf("heartbeat seq %d got no reply", hb.Seq())
				}
				echo := copyMessage(hb)
				echo.SetMessageType(protocol.Response)
				if got, want := encodeHex(res, res.Seq()), encodeHex(echo, echo.Seq()); got != want {
					t.Fatalf("heartbeat reply:\n got  %s\n want %s", got, want)
				}
			}
			if c.IsShutdown() || c.IsClosing() {
				t.Fatal("the client closed its connection")
			}
			checkStillServes(t, c, tc.st)
		})
	}
}
