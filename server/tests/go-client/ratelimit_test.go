package goclient

import (
	"context"
	"testing"
	"time"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
	"github.com/smallnest/rpcx/share"
)

const errRateLimit = "request reached rate limit"

// requireRateServer skips the case unless a server with a rate limit is running; it returns that
// server's address.
func requireRateServer(t *testing.T) string {
	t.Helper()
	if env.rateAddr == "" {
		skip(t, "RPCX_RATE_ADDR is not set: no server started with a rate limit")
	}
	return env.rateAddr
}

// burst sends ten seconds' worth of requests at once (golden V7.req but for the seq) and returns
// how many were refused; any other outcome fails the case.
func burst(t *testing.T, c *client.Client) (ok, refused int) {
	t.Helper()
	ctx := context.WithValue(callContext(t), share.ReqMetaDataKey, map[string]string{"k": "v"})
	n := max(10*env.rate, 100)
	calls := make([]*client.Call, n)
	replies := make([]Reply, n)
	for i := range n {
		calls[i] = c.Go(ctx, "Arith", "Mul", &Args{A: 10, B: 20}, &replies[i], make(chan *client.Call, 1))
	}
	for i, call := range calls {
		switch err := wait(t, call).Error; {
		case err == nil && replies[i].C == 200:
			ok++
		case err != nil && err.Error() == errRateLimit:
			refused++
		default:
			t.Fatalf("call %d: reply %d, error %v; want 200 or %q", i, replies[i].C, err, errRateLimit)
		}
	}
	return ok, refused
}

// TestRateLimit drives a server with serverplugin.ReqRateLimitingPlugin in non-blocking mode
// (rpcx-protocol.md 4.10): requests over the rate get an error reply and the connection stays open.
func TestRateLimit(t *testing.T) {
	runCase(t, "burst_is_refused", func(t *testing.T) {
		addr := requireRateServer(t)
		wire := &wireLog{}
		c := dial(t, addr, options(protocol.JSON), wire)
		ok, refused := burst(t, c)
		if ok == 0 || refused == 0 {
			t.Fatalf("%d calls succeeded and %d were refused, want some of each", ok, refused)
		}
		// The refusal is golden frame V7.res, but for the seq.
		for _, res := range wire.received() {
			if res.MessageStatusType() == protocol.Error {
				if got := encodeHex(res, 8); got != golden["V7.res"] {
					t.Fatalf("rate-limit response (seq set to 8):\n got  %s\n want %s", got, golden["V7.res"])
				}
				return
			}
		}
		t.Fatal("no rate-limit response was recorded")
	})

	runCase(t, "connection_stays_open", func(t *testing.T) {
		addr := requireRateServer(t)
		c := dial(t, addr, options(protocol.JSON), nil)
		if _, refused := burst(t, c); refused == 0 {
			t.Fatal("no request was refused")
		}
		time.Sleep(time.Second + 100*time.Millisecond) // the bucket refills
		if c.IsShutdown() {
			t.Fatal("the server closed the connection after refusing requests")
		}
		checkStillServes(t, c, protocol.JSON)
	})
}
