package goclient

import (
	"encoding/hex"
	"testing"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// TestErrors checks the error texts a Go client sees (rpcx-protocol.md 4.6, 4.7): exact strings in
// __rpcx_error__, status Error, and the payload an error response carries.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, path, method string
		st                 protocol.SerializeType
		args               Args
		wantErr            string
		// wantPayload is the hex of the error response's payload: empty for routing errors; the
		// encoded zero reply for a service method's error.
		wantPayload string
		// wantC is the caller's reply after the call; it starts at -1, and the client decodes a
		// non-empty error payload into it.
		wantC int64
	}{
		{"unknown_service", "Foo", "Bar", protocol.JSON, Args{A: 1, B: 2}, "rpcx: can't find service Foo", "", -1},
		{"unknown_service_msgpack", "Foo", "Bar", protocol.MsgPack, Args{A: 1, B: 2}, "rpcx: can't find service Foo", "", -1},
		{"unknown_method", "Arith", "Pow", protocol.JSON, Args{A: 1, B: 2}, "rpcx: can't find method Pow", "", -1},
		{"unknown_method_protobuf", "Arith", "Pow", protocol.ProtoBuffer, Args{A: 1, B: 2}, "rpcx: can't find method Pow", "", -1},
		{"method_case_sensitive", "Arith", "mul", protocol.JSON, Args{A: 1, B: 2}, "rpcx: can't find method mul", "", -1},
		{"service_case_sensitive", "arith", "Mul", protocol.JSON, Args{A: 1, B: 2}, "rpcx: can't find service arith", "", -1},
		{"divide_by_zero_JSON", "Arith", "Div", protocol.JSON, Args{A: 10, B: 0}, "divide by zero", hex.EncodeToString([]byte(`{"C":0}`)), 0},
		{"divide_by_zero_MsgPack", "Arith", "Div", protocol.MsgPack, Args{A: 10, B: 0}, "divide by zero", "81a143d30000000000000000", 0},
		// proto3 encodes C == 0 as no bytes, so the client has nothing to decode.
		{"divide_by_zero_Protobuf", "Arith", "Div", protocol.ProtoBuffer, Args{A: 10, B: 0}, "divide by zero", "", -1},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			wire := &wireLog{}
			c := dial(t, env.addr, options(tc.st), wire)
			reply := Reply{C: -1}
			err := c.Call(callContext(t), tc.path, tc.method, &tc.args, &reply)
			wantErrText(t, err, tc.wantErr)
			if reply.C != tc.wantC {
				t.Errorf("reply.C = %d after the error, want %d", reply.C, tc.wantC)
			}
			_, res := wire.exchange(t, tc.path, tc.method)
			if res.MessageStatusType() != protocol.Error {
				t.Errorf("response status %d, want Error (1)", res.MessageStatusType())
			}
			if len(res.Metadata) != 1 || res.Metadata[protocol.ServiceError] != tc.wantErr {
				t.Errorf("response metadata %q, want only %s=%q", res.Metadata, protocol.ServiceError, tc.wantErr)
			}
			if got := hex.EncodeToString(res.Payload); got != tc.wantPayload {
				t.Errorf("error payload %s, want %q", got, tc.wantPayload)
			}
			if res.ServicePath != tc.path || res.ServiceMethod != tc.method || res.SerializeType() != tc.st {
				t.Errorf("response %s.%s serialize %d, want %s.%s serialize %d echoed", res.ServicePath, res.ServiceMethod, res.SerializeType(), tc.path, tc.method, tc.st)
			}

			// The connection survives an error response.
			if err := c.Call(callContext(t), "Arith", "Mul", &Args{A: 6, B: 7}, &reply); err != nil || reply.C != 42 {
				t.Fatalf("Arith.Mul after the error = %d, %v; want 42", reply.C, err)
			}
		})
	}

	runCase(t, "XClient_service_error_not_retried", func(t *testing.T) {
		// A service error is final: a Failtry XClient returns it as is instead of retrying.
		d, err := client.NewPeer2PeerDiscovery("tcp@"+env.addr, "")
		if err != nil {
			t.Fatal(err)
		}
		xc := client.NewXClient("Arith", client.Failtry, client.RandomSelect, d, options(protocol.MsgPack))
		defer xc.Close()
		reply := Reply{C: -1}
		wantErrText(t, xc.Call(callContext(t), "Div", &Args{A: 1, B: 0}, &reply), "divide by zero")
		if reply.C != 0 {
			t.Errorf("reply.C = %d, want 0 (decoded from the error response)", reply.C)
		}
	})

	runCase(t, "SerializeNone_reply_to_struct_service", func(t *testing.T) {
		// Raw bytes cannot decode into Args: the server answers with an error response (the text is
		// the codec's own and differs between implementations), and the connection stays usable.
		c := dial(t, env.addr, options(protocol.SerializeNone), nil)
		var reply []byte
		err := c.Call(callContext(t), "Arith", "Mul", []byte("not a struct"), &reply)
		if err == nil {
			t.Fatalf("Arith.Mul with a raw payload succeeded (reply %q), want an error", reply)
		}
		t.Logf("error text: %q", err)
		if err := c.Call(callContext(t), "Echo", "Echo", []byte("still here"), &reply); err != nil || string(reply) != "still here" {
			t.Fatalf("Echo.Echo after the error = %q, %v", reply, err)
		}
	})
}
