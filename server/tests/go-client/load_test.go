package goclient

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smallnest/rpcx/protocol"
)

// TestLoad shares ONE client (one connection) between 1,000 goroutines that make 100,000
// Arith.Mul calls in all over MsgPack, and checks every reply: the server must keep many requests
// in flight on a connection and match replies by seq (rpcx-protocol.md 4.1, 5).
func TestLoad(t *testing.T) {
	runCase(t, "1000_goroutines_100000_calls_one_client", func(t *testing.T) {
		const goroutines, perGoroutine = 1000, 100
		c := dial(t, env.addr, options(protocol.MsgPack), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		var failed atomic.Int64
		var firstErr sync.Once
		var wg sync.WaitGroup
		start := time.Now()
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					args := Args{A: int64(g*1000 + i), B: int64(i - 50)}
					var reply Reply
					err := c.Call(ctx, "Arith", "Mul", &args, &reply)
					if err == nil && reply.C == args.A*args.B {
						continue
					}
					failed.Add(1)
					firstErr.Do(func() {
						t.Errorf("Arith.Mul(%d, %d) = %d, %v; want %d", args.A, args.B, reply.C, err, args.A*args.B)
					})
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if n := failed.Load(); n > 0 {
			t.Fatalf("%d of %d calls failed", n, goroutines*perGoroutine)
		}
		t.Logf("%d calls in %v (%.0f calls/s)", goroutines*perGoroutine, elapsed.Round(time.Millisecond), float64(goroutines*perGoroutine)/elapsed.Seconds())
	})
}
