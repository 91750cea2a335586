package goclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
)

// requireTLS skips the case unless a TLS server runs; it returns its address and a client TLS
// configuration that trusts its certificate.
func requireTLS(t *testing.T) (string, *tls.Config) {
	t.Helper()
	if env.tlsAddr == "" || env.tlsCert == "" {
		skip(t, "RPCX_TLS_ADDR or RPCX_TLS_CERT is not set: no server started with TLS")
	}
	pem, err := os.ReadFile(env.tlsCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", env.tlsCert)
	}
	return env.tlsAddr, &tls.Config{RootCAs: roots, ServerName: "localhost"}
}

// TestTLS calls through the stock client with Option.TLSConfig (docs/protocol.md section 5).
func TestTLS(t *testing.T) {
	for _, st := range []protocol.SerializeType{protocol.JSON, protocol.MsgPack} {
		runCase(t, "client_"+serializeName(st), func(t *testing.T) {
			addr, config := requireTLS(t)
			opt := options(st)
			opt.TLSConfig = config
			c := dial(t, addr, opt, nil)
			for i := int64(1); i <= 3; i++ {
				var reply Reply
				if err := c.Call(callContext(t), "Arith", "Mul", &Args{A: i, B: 7}, &reply); err != nil || reply.C != 7*i {
					t.Fatalf("Arith.Mul over TLS = %d, %v; want %d", reply.C, err, 7*i)
				}
			}
		})
	}

	runCase(t, "gateway_inside_tls", func(t *testing.T) {
		addr, config := requireTLS(t)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: config}}
		res := gatewayCall(t, hc, "https://"+addr+"/Arith", map[string]string{
			"X-RPCX-SerializeType": "1", "X-RPCX-ServiceMethod": "Mul",
		}, `{"A":6,"B":7}`)
		if res.status != 200 || strings.TrimSpace(res.body) != `{"C":42}` {
			t.Fatalf("gateway over TLS: %d %q", res.status, res.body)
		}
	})

	runCase(t, "plain_client_refused_by_tls_only_server", func(t *testing.T) {
		// ringrpc serves plain TCP and TLS on one port by default; its TLS server here runs
		// with --tls-only, as Go's TLS server serves nothing else.
		addr, _ := requireTLS(t)
		c := client.NewClient(options(protocol.JSON))
		if err := c.Connect("tcp", addr); err == nil {
			var reply Reply
			err = c.Call(callContext(t), "Arith", "Mul", &Args{A: 1, B: 1}, &reply)
			c.Close()
			if err == nil {
				t.Fatal("a plain client got an answer from the TLS-only Go server")
			}
		}
	})
}

// TestConnect uses the client's http@ network: CONNECT /_rpcx_, then binary rpcx on the same
// connection (docs/protocol.md 4.17 "Other modes").
func TestConnect(t *testing.T) {
	for _, st := range []protocol.SerializeType{protocol.JSON, protocol.MsgPack} {
		runCase(t, "client_"+serializeName(st), func(t *testing.T) {
			if env.connectAddr == "" {
				skip(t, "RPCX_CONNECT_ADDR is not set: no server answers CONNECT")
			}
			c := client.NewClient(options(st))
			if err := c.Connect("http", env.connectAddr); err != nil {
				t.Fatalf("connect http@%s: %v", env.connectAddr, err)
			}
			t.Cleanup(func() { c.Close() })
			for i := int64(1); i <= 3; i++ {
				var reply Reply
				if err := c.Call(callContext(t), "Arith", "Add", &Args{A: i, B: 10}, &reply); err != nil || reply.C != i+10 {
					t.Fatalf("Arith.Add over CONNECT = %d, %v; want %d", reply.C, err, i+10)
				}
			}
		})
	}
}

func serializeName(st protocol.SerializeType) string {
	switch st {
	case protocol.JSON:
		return "json"
	case protocol.MsgPack:
		return "msgpack"
	}
	return fmt.Sprint(int(st))
}
