package goclient

import (
	"bytes"
	"testing"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// codecs are the serialize types the Arith service answers on one service path.
var codecs = []struct {
	name string
	st   protocol.SerializeType
}{
	{"JSON", protocol.JSON},
	{"MsgPack", protocol.MsgPack},
	{"Protobuf", protocol.ProtoBuffer},
}

// callStyle is one way of making a call with the stock client: it calls servicePath.method on the
// server under test and fills reply.
type callStyle struct {
	name string
	call func(t *testing.T, opt client.Option, servicePath, method string, args, reply any) error
}

var callStyles = []callStyle{
	{name: "Client.Call", call: func(t *testing.T, opt client.Option, servicePath, method string, args, reply any) error {
		c := dial(t, env.addr, opt, nil)
		return c.Call(callContext(t), servicePath, method, args, reply)
	}},
	{name: "Client.Go", call: func(t *testing.T, opt client.Option, servicePath, method string, args, reply any) error {
		c := dial(t, env.addr, opt, nil)
		call := c.Go(callContext(t), servicePath, method, args, reply, make(chan *client.Call, 1))
		return wait(t, call).Error
	}},
	{name: "XClient.peer2peer", call: func(t *testing.T, opt client.Option, servicePath, method string, args, reply any) error {
		return peer2peer(t, servicePath, env.addr, opt).Call(callContext(t), method, args, reply)
	}},
	{name: "XClient.multipleServers", call: func(t *testing.T, opt client.Option, servicePath, method string, args, reply any) error {
		xc := multiServer(t, servicePath, opt, env.addr, requireAddr2(t))
		// Round robin: two calls, one per server; both must be right.
		if err := xc.Call(callContext(t), method, args, reply); err != nil {
			return err
		}
		return xc.Call(callContext(t), method, args, reply)
	}},
}

func TestArith(t *testing.T) {
	methods := []struct {
		method string
		args   Args
		want   int64
	}{
		{"Mul", Args{A: 10, B: 20}, 200},
		{"Add", Args{A: -7, B: 3}, -4},
		{"Div", Args{A: -100, B: 7}, -14}, // integer division truncates towards zero
	}
	for _, cd := range codecs {
		t.Run(cd.name, func(t *testing.T) {
			for _, m := range methods {
				t.Run(m.method, func(t *testing.T) {
					for _, style := range callStyles {
						runCase(t, style.name, func(t *testing.T) {
							reply := Reply{C: 12345}
							if err := style.call(t, options(cd.st), "Arith", m.method, &m.args, &reply); err != nil {
								t.Fatalf("Arith.%s(%+v): %v", m.method, m.args, err)
							}
							if reply.C != m.want {
								t.Fatalf("Arith.%s(%+v) = %d, want %d", m.method, m.args, reply.C, m.want)
							}
						})
					}
				})
			}
		})
	}
}

func TestEcho(t *testing.T) {
	payload := []byte("hello rpcx \x00\x01\xff")
	for _, style := range callStyles {
		runCase(t, style.name, func(t *testing.T) {
			var reply []byte
			if err := style.call(t, options(protocol.SerializeNone), "Echo", "Echo", payload, &reply); err != nil {
				t.Fatalf("Echo.Echo: %v", err)
			}
			if !bytes.Equal(reply, payload) {
				t.Fatalf("Echo.Echo = %q, want %q", reply, payload)
			}
		})
	}
}
