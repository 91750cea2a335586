package goclient

import (
	"fmt"
	"testing"
	"time"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// bidirectional returns an XClient for "Push" whose server pushes arrive on the returned channel.
func bidirectional(t *testing.T) (client.XClient, chan *protocol.Message) {
	t.Helper()
	d, err := client.NewPeer2PeerDiscovery("tcp@"+env.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *protocol.Message, 16)
	xc := client.NewBidirectionalXClient("Push", client.Failfast, client.RandomSelect, d, options(protocol.SerializeNone), ch)
	t.Cleanup(func() { xc.Close() })
	return xc, ch
}

// subscribe calls Push.Subscribe, which pushes payload back to the calling connection.
func subscribe(t *testing.T, xc client.XClient, payload string) {
	t.Helper()
	var reply []byte
	if err := xc.Call(callContext(t), "Subscribe", []byte(payload), &reply); err != nil || string(reply) != payload {
		t.Fatalf("Push.Subscribe(%q) = %q, %v", payload, reply, err)
	}
}

// nextPush returns the next server push, or fails the case after callTimeout.
func nextPush(t *testing.T, ch chan *protocol.Message) *protocol.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(callTimeout):
		t.Fatalf("no server push within %v", callTimeout)
		return nil
	}
}

// TestPush receives server pushes (rpcx-protocol.md 4.16) through NewBidirectionalXClient.
func TestPush(t *testing.T) {
	runCase(t, "Subscribe_gets_Notify", func(t *testing.T) {
		xc, ch := bidirectional(t)
		subscribe(t, xc, "hello")
		m := nextPush(t, ch)
		if m.MessageType() != protocol.Request || !m.IsOneway() || m.IsHeartbeat() ||
			m.SerializeType() != protocol.SerializeNone || m.CompressType() != protocol.None ||
			m.ServicePath != "Push" || m.ServiceMethod != "Notify" || len(m.Metadata) != 0 || string(m.Payload) != "hello" {
			t.Fatalf("push %s, want Push.Notify oneway request of SerializeNone %q", encodeHex(m, m.Seq()), "hello")
		}
		// Golden vector V3.push, but for the seq, which counts every push the server made.
		if got := encodeHex(m, 1); got != golden["V3.push"] {
			t.Fatalf("push (seq set to 1):\n got  %s\n want %s", got, golden["V3.push"])
		}
	})

	runCase(t, "pushes_in_order", func(t *testing.T) {
		xc, ch := bidirectional(t)
		var last uint64
		for i := range 5 {
			payload := fmt.Sprintf("notice-%d", i)
			subscribe(t, xc, payload)
			m := nextPush(t, ch)
			if string(m.Payload) != payload {
				t.Fatalf("push %d carries %q, want %q", i, m.Payload, payload)
			}
			if i > 0 && m.Seq() <= last {
				t.Fatalf("push seq %d after %d, want increasing", m.Seq(), last)
			}
			last = m.Seq()
		}
	})

	runCase(t, "only_the_caller_gets_it", func(t *testing.T) {
		xcA, chA := bidirectional(t)
		xcB, chB := bidirectional(t)
		subscribe(t, xcB, "for B") // connect B first
		nextPush(t, chB)
		subscribe(t, xcA, "for A")
		if m := nextPush(t, chA); string(m.Payload) != "for A" {
			t.Fatalf("A got push %q, want %q", m.Payload, "for A")
		}
		select {
		case m := <-chB:
			t.Fatalf("B got push %q meant for A", m.Payload)
		case <-time.After(quietPeriod):
		}
	})
}
