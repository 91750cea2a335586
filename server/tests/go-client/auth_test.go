package goclient

import (
	"context"
	"testing"
	"time"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
	"github.com/smallnest/rpcx/share"
)

// requireAuthServer skips the case unless a server with an auth token is running; it returns that
// server's address and token.
func requireAuthServer(t *testing.T) (addr, token string) {
	t.Helper()
	if env.authAddr == "" || env.authToken == "" {
		skip(t, "RPCX_AUTH_ADDR or RPCX_AUTH_TOKEN is not set: no server started with an auth token")
	}
	return env.authAddr, env.authToken
}

// TestAuth calls a server whose AuthFunc requires the __AUTH token (rpcx-protocol.md 4.11).
func TestAuth(t *testing.T) {
	cases := []struct {
		name    string
		token   func(token string) string // what XClient.Auth is given; "" = not called
		wantErr string
	}{
		{"right_token", func(token string) string { return token }, ""},
		{"wrong_token", func(token string) string { return "wrong-" + token }, "invalid token"},
		{"no_token", func(string) string { return "" }, "invalid token"},
	}
	t.Run("XClient.Auth", func(t *testing.T) {
		for _, tc := range cases {
			runCase(t, tc.name, func(t *testing.T) {
				addr, token := requireAuthServer(t)
				xc := peer2peer(t, "Arith", addr, options(protocol.MsgPack))
				wire := &wireLog{}
				xc.GetPlugins().Add(wire)
				if tok := tc.token(token); tok != "" {
					xc.Auth(tok)
				}
				var reply Reply
				err := xc.Call(callContext(t), "Mul", &Args{A: 10, B: 20}, &reply)
				if tc.wantErr == "" {
					if err != nil || reply.C != 200 {
						t.Fatalf("Arith.Mul = %d, %v; want 200", reply.C, err)
					}
					if req := wire.lastSent(t, "Arith", "Mul"); req.Metadata[share.AuthKey] != token {
						t.Fatalf("request metadata %q has no %s token", req.Metadata, share.AuthKey)
					}
					return
				}
				wantErrText(t, err, tc.wantErr)
				_, res := wire.exchange(t, "Arith", "Mul")
				if len(res.Metadata) != 1 || len(res.Payload) != 0 {
					t.Fatalf("auth error response: metadata %q, payload %d bytes; want only %s and no payload", res.Metadata, len(res.Payload), protocol.ServiceError)
				}
			})
		}
	})

	runCase(t, "token_checked_on_every_request", func(t *testing.T) {
		addr, token := requireAuthServer(t)
		c := dial(t, addr, options(protocol.JSON), nil)
		ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, map[string]string{share.AuthKey: token})
		for i := range 3 {
			var reply Reply
			if err := c.Call(ctx, "Arith", "Add", &Args{A: int64(i), B: 1}, &reply); err != nil || reply.C != int64(i+1) {
				t.Fatalf("call %d: Arith.Add = %d, %v", i, reply.C, err)
			}
		}
		var reply Reply
		wantErrText(t, c.Call(callContext(t), "Arith", "Add", &Args{A: 1, B: 1}, &reply), "invalid token")
	})

	runCase(t, "connection_closed_after_failure", func(t *testing.T) {
		addr, _ := requireAuthServer(t)
		c := dial(t, addr, options(protocol.JSON), nil)
		var reply Reply
		wantErrText(t, c.Call(callContext(t), "Arith", "Mul", &Args{A: 1, B: 2}, &reply), "invalid token")
		for end := time.Now().Add(2 * time.Second); !c.IsShutdown(); {
			if time.Now().After(end) {
				t.Fatal("the server kept the connection open after an auth failure")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := c.Call(callContext(t), "Arith", "Mul", &Args{A: 1, B: 2}, &reply); err != client.ErrShutdown {
			t.Fatalf("call on the closed connection: %v, want %v", err, client.ErrShutdown)
		}
	})

	runCase(t, "heartbeat_needs_no_token", func(t *testing.T) {
		addr, _ := requireAuthServer(t)
		opt := options(protocol.MsgPack)
		opt.Heartbeat = true
		opt.HeartbeatInterval = 50 * time.Millisecond
		opt.MaxWaitForHeartbeat = 2 * time.Second
		wire := &wireLog{}
		c := dial(t, addr, opt, wire)
		time.Sleep(600 * time.Millisecond)
		beats := 0
		for _, m := range wire.received() {
			if m.IsHeartbeat() && m.MessageStatusType() == protocol.Normal {
				beats++
			}
		}
		if beats < 5 || c.IsShutdown() {
			t.Fatalf("%d heartbeat replies in 600 ms without a token, connection shut down: %v; want at least 5 and open", beats, c.IsShutdown())
		}
	})
}
