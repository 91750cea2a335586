package goclient

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// callTimeout bounds every call, so that a server that never answers fails a case instead of
// hanging the suite.
const callTimeout = 10 * time.Second

var markdownFlag = flag.String("markdown", "", "write a Markdown table of every case and its result to this file (or set RPCX_MARKDOWN)")

// suiteEnv is the environment the suite runs in, set by scripts/go-suite.sh.
type suiteEnv struct {
	addr      string // RPCX_ADDR: the server under test
	addr2     string // RPCX_ADDR2: a second server of the same kind
	kind      string // RPCX_SERVER_KIND: "go" or "ringrpc"
	authAddr  string // RPCX_AUTH_ADDR: a server that requires authToken
	authToken string // RPCX_AUTH_TOKEN
	rateAddr  string // RPCX_RATE_ADDR: a server with a request-rate limit of rate per second
	rate      int
	tlsAddr   string // RPCX_TLS_ADDR: a server with TLS (certificate RPCX_TLS_CERT)
	tlsCert   string // RPCX_TLS_CERT: the PEM CA certificate that signed the TLS server's
	// RPCX_CONNECT_ADDR: a server that answers CONNECT /_rpcx_ (ringrpc: its main port; Go: a
	// server in Serve("http", …) mode, which serves nothing else)
	connectAddr string
}

var env suiteEnv

func TestMain(m *testing.M) {
	flag.Parse()
	env = suiteEnv{
		addr:      os.Getenv("RPCX_ADDR"),
		addr2:     os.Getenv("RPCX_ADDR2"),
		kind:      os.Getenv("RPCX_SERVER_KIND"),
		authAddr:  os.Getenv("RPCX_AUTH_ADDR"),
		authToken: os.Getenv("RPCX_AUTH_TOKEN"),
		rateAddr:  os.Getenv("RPCX_RATE_ADDR"),
		rate:      20,
		tlsAddr:   os.Getenv("RPCX_TLS_ADDR"),
		tlsCert:   os.Getenv("RPCX_TLS_CERT"),

		connectAddr: os.Getenv("RPCX_CONNECT_ADDR"),
	}
	if env.addr == "" {
		fmt.Println("go-client: RPCX_ADDR is not set, so no case ran; run this suite through scripts/go-suite.sh")
		os.Exit(0)
	}
	if env.kind == "" {
		env.kind = "go"
	}
	if r := os.Getenv("RPCX_RATE"); r != "" {
		if _, err := fmt.Sscan(r, &env.rate); err != nil || env.rate <= 0 {
			fmt.Printf("go-client: RPCX_RATE=%q is not a positive integer\n", r)
			os.Exit(2)
		}
	}

	code := m.Run()

	path := *markdownFlag
	if path == "" {
		path = os.Getenv("RPCX_MARKDOWN")
	}
	if path != "" {
		if err := os.WriteFile(path, []byte(results.markdown(env.kind)), 0o644); err != nil {
			fmt.Printf("go-client: writing %s: %v\n", path, err)
			code = 1
		}
	}
	os.Exit(code)
}

// outcome is the result of one case, for the Markdown report.
type outcome struct {
	name   string
	result string // "pass", "FAIL" or "skip"
	reason string // why it was skipped
}

// report collects the outcome of every case in the order the cases ran.
type report struct {
	mu       sync.Mutex
	outcomes []outcome
	reasons  map[string]string
}

var results = &report{reasons: map[string]string{}}

func (r *report) add(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.result == "skip" {
		o.reason = r.reasons[o.name]
	}
	r.outcomes = append(r.outcomes, o)
}

func (r *report) skipReason(name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons[name] = reason
}

// markdown renders `| case | <kind> |` rows; scripts/go-suite.sh joins the tables of two servers.
func (r *report) markdown(kind string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "| case | %s |\n|---|---|\n", kind)
	for _, o := range r.outcomes {
		cell := o.result
		if o.reason != "" {
			cell += ": " + strings.ReplaceAll(o.reason, "|", "/")
		}
		fmt.Fprintf(&b, "| %s | %s |\n", o.name, cell)
	}
	return b.String()
}

// runCase runs one case as a subtest and records its outcome for the report. Every case of the
// suite goes through it, so the report lists every case.
func runCase(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Cleanup(func() {
			o := outcome{name: t.Name(), result: "pass"}
			switch {
			case t.Failed():
				o.result = "FAIL"
			case t.Skipped():
				o.result = "skip"
			}
			results.add(o)
		})
		fn(t)
	})
}

// skip skips the case and keeps the reason for the report.
func skip(t *testing.T, reason string) {
	t.Helper()
	results.skipReason(t.Name(), reason)
	t.Skip(reason)
}

// requireAddr2 returns the second server's address, or skips the case.
func requireAddr2(t *testing.T) string {
	t.Helper()
	if env.addr2 == "" {
		skip(t, "RPCX_ADDR2 is not set: no second server for the multi-server cases")
	}
	return env.addr2
}

// callContext returns a context that ends after callTimeout or with the case.
func callContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// options returns the client defaults with the given serialize type.
func options(st protocol.SerializeType) client.Option {
	opt := client.DefaultOption
	opt.SerializeType = st
	return opt
}

// dial connects a plain client to addr; the connection is closed when the case ends. A non-nil
// wire records the frames the client sends and receives.
func dial(t *testing.T, addr string, opt client.Option, wire *wireLog) *client.Client {
	t.Helper()
	c := client.NewClient(opt)
	if wire != nil {
		c.Plugins = client.NewPluginContainer()
		c.Plugins.Add(wire)
	}
	if err := c.Connect("tcp", addr); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// peer2peer returns an XClient for servicePath on addr; it is closed when the case ends.
func peer2peer(t *testing.T, servicePath, addr string, opt client.Option) client.XClient {
	t.Helper()
	d, err := client.NewPeer2PeerDiscovery("tcp@"+addr, "")
	if err != nil {
		t.Fatal(err)
	}
	xc := client.NewXClient(servicePath, client.Failfast, client.RandomSelect, d, opt)
	t.Cleanup(func() { xc.Close() })
	return xc
}

// multiServer returns a round-robin XClient for servicePath over addrs; it is closed when the case
// ends.
func multiServer(t *testing.T, servicePath string, opt client.Option, addrs ...string) client.XClient {
	t.Helper()
	pairs := make([]*client.KVPair, len(addrs))
	for i, a := range addrs {
		pairs[i] = &client.KVPair{Key: "tcp@" + a}
	}
	d, err := client.NewMultipleServersDiscovery(pairs)
	if err != nil {
		t.Fatal(err)
	}
	xc := client.NewXClient(servicePath, client.Failfast, client.RoundRobin, d, opt)
	t.Cleanup(func() { xc.Close() })
	return xc
}

// wait returns the finished call, or fails the case after callTimeout.
func wait(t *testing.T, call *client.Call) *client.Call {
	t.Helper()
	select {
	case c := <-call.Done:
		return c
	case <-time.After(callTimeout):
		t.Fatalf("%s.%s: no reply within %v", call.ServicePath, call.ServiceMethod, callTimeout)
		return nil
	}
}

// wantErrText fails the case unless err is non-nil with exactly the text want.
func wantErrText(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %q", want)
	}
	if err.Error() != want {
		t.Fatalf("got error %q, want %q", err.Error(), want)
	}
}

// wireLog is a client plugin that keeps a copy of every frame the client sends and receives:
// requests and heartbeats as they are encoded (before compression), responses and server pushes as
// they are decoded (after decompression; the header still shows the compress type on the wire).
type wireLog struct {
	mu   sync.Mutex
	sent []*protocol.Message
	recv []*protocol.Message
}

// ClientBeforeEncode implements client.ClientBeforeEncodePlugin.
func (w *wireLog) ClientBeforeEncode(m *protocol.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent = append(w.sent, copyMessage(m))
	return nil
}

// ClientAfterDecode implements client.ClientAfterDecodePlugin.
func (w *wireLog) ClientAfterDecode(m *protocol.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recv = append(w.recv, copyMessage(m))
	return nil
}

// lastSent returns the last frame sent for path.method, or fails the case.
func (w *wireLog) lastSent(t *testing.T, path, method string) *protocol.Message {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.sent) - 1; i >= 0; i-- {
		if m := w.sent[i]; m.ServicePath == path && m.ServiceMethod == method {
			return m
		}
	}
	t.Fatalf("no %s.%s request was sent", path, method)
	return nil
}

// response returns the response received for seq, or nil.
func (w *wireLog) response(seq uint64) *protocol.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.recv {
		if m.MessageType() == protocol.Response && m.Seq() == seq {
			return m
		}
	}
	return nil
}

// exchange returns the last request sent for path.method and its response, or fails the case.
func (w *wireLog) exchange(t *testing.T, path, method string) (req, res *protocol.Message) {
	t.Helper()
	req = w.lastSent(t, path, method)
	res = w.response(req.Seq())
	if res == nil {
		t.Fatalf("no response to %s.%s seq %d", path, method, req.Seq())
	}
	return req, res
}

// received returns copies of all frames received so far.
func (w *wireLog) received() []*protocol.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*protocol.Message(nil), w.recv...)
}

// sentFrames returns copies of all frames sent so far.
func (w *wireLog) sentFrames() []*protocol.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*protocol.Message(nil), w.sent...)
}

func copyMessage(m *protocol.Message) *protocol.Message {
	c := protocol.NewMessage()
	*c.Header = *m.Header
	c.ServicePath = m.ServicePath
	c.ServiceMethod = m.ServiceMethod
	c.Metadata = maps.Clone(m.Metadata)
	c.Payload = bytes.Clone(m.Payload)
	return c
}

// connLog is an XClient plugin that records the remote address of every connection the XClient
// opens, to show which servers a call reached.
type connLog struct {
	mu    sync.Mutex
	addrs map[string]bool
}

// ClientConnected implements client.ClientConnectedPlugin.
func (l *connLog) ClientConnected(conn net.Conn) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addrs == nil {
		l.addrs = map[string]bool{}
	}
	l.addrs[conn.RemoteAddr().String()] = true
	return conn, nil
}

func (l *connLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}
