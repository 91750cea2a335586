package goclient

import (
	"strings"
	"testing"

	"github.com/smallnest/rpcx/protocol"
)

// TestMultiServer drives RPCX_ADDR and RPCX_ADDR2 through one XClient: round-robin selection,
// Broadcast (every server must succeed) and Fork (the first success wins). A connLog plugin shows
// that the calls reached both servers.
func TestMultiServer(t *testing.T) {
	runCase(t, "round_robin", func(t *testing.T) {
		xc := multiServer(t, "Arith", options(protocol.MsgPack), env.addr, requireAddr2(t))
		conns := &connLog{}
		xc.GetPlugins().Add(conns)
		for i := range 6 {
			var reply Reply
			if err := xc.Call(callContext(t), "Mul", &Args{A: int64(i), B: 9}, &reply); err != nil || reply.C != int64(i*9) {
				t.Fatalf("Arith.Mul(%d, 9) = %d, %v", i, reply.C, err)
			}
		}
		if n := conns.count(); n != 2 {
			t.Fatalf("calls reached %d servers, want 2", n)
		}
	})

	runCase(t, "Broadcast", func(t *testing.T) {
		xc := multiServer(t, "Arith", options(protocol.JSON), env.addr, requireAddr2(t))
		conns := &connLog{}
		xc.GetPlugins().Add(conns)
		var reply Reply
		if err := xc.Broadcast(callContext(t), "Mul", &Args{A: 10, B: 20}, &reply); err != nil || reply.C != 200 {
			t.Fatalf("Broadcast Arith.Mul = %d, %v; want 200", reply.C, err)
		}
		if n := conns.count(); n != 2 {
			t.Fatalf("Broadcast reached %d servers, want 2", n)
		}
	})

	runCase(t, "Broadcast_raw_Echo", func(t *testing.T) {
		xc := multiServer(t, "Echo", options(protocol.SerializeNone), env.addr, requireAddr2(t))
		var reply []byte
		if err := xc.Broadcast(callContext(t), "Echo", []byte("to all"), &reply); err != nil || string(reply) != "to all" {
			t.Fatalf("Broadcast Echo.Echo = %q, %v", reply, err)
		}
	})

	runCase(t, "Broadcast_error", func(t *testing.T) {
		// Broadcast fails when a server fails; each server answers "divide by zero".
		xc := multiServer(t, "Arith", options(protocol.MsgPack), env.addr, requireAddr2(t))
		var reply Reply
		err := xc.Broadcast(callContext(t), "Div", &Args{A: 1, B: 0}, &reply)
		if err == nil || !strings.Contains(err.Error(), "divide by zero") {
			t.Fatalf("Broadcast Arith.Div by zero: error %v, want one holding %q", err, "divide by zero")
		}
	})

	runCase(t, "Fork", func(t *testing.T) {
		xc := multiServer(t, "Arith", options(protocol.ProtoBuffer), env.addr, requireAddr2(t))
		conns := &connLog{}
		xc.GetPlugins().Add(conns)
		var reply Reply
		if err := xc.Fork(callContext(t), "Add", &Args{A: 10, B: 20}, &reply); err != nil || reply.C != 30 {
			t.Fatalf("Fork Arith.Add = %d, %v; want 30", reply.C, err)
		}
		if n := conns.count(); n != 2 {
			t.Fatalf("Fork reached %d servers, want 2", n)
		}
	})

	runCase(t, "Fork_error", func(t *testing.T) {
		xc := multiServer(t, "Arith", options(protocol.JSON), env.addr, requireAddr2(t))
		var reply Reply
		err := xc.Fork(callContext(t), "Pow", &Args{A: 1, B: 2}, &reply)
		if err == nil || !strings.Contains(err.Error(), "rpcx: can't find method Pow") {
			t.Fatalf("Fork Arith.Pow: error %v, want one holding %q", err, "rpcx: can't find method Pow")
		}
	})
}
