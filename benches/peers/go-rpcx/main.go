// Command go-rpcx-server is the Go rpcx reference server that ringrpc is compared with: the same
// demo services (Arith, Echo, Push) and rpcx-benchmark's Hello on the stock smallnest/rpcx server, used by the conformance
// suite (server/tests/go-client, scripts/go-suite.sh) and as the peer in benchmarks.
//
// It prints one line "listening on ADDR" once the socket is bound, and shuts down gracefully on
// SIGINT or SIGTERM. With -etcd it registers its services in etcd through rpcx-etcd's own plugin
// (v0.5.0), as a Go deployment does; Shutdown unregisters them before it drains.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	etcdplugin "github.com/rpcxio/rpcx-etcd/serverplugin"
	"github.com/smallnest/rpcx/protocol"
	"github.com/smallnest/rpcx/server"
	"github.com/smallnest/rpcx/serverplugin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8972", "TCP address to listen on (port 0 picks a free port)")
	procs := flag.Int("procs", 0, "GOMAXPROCS; 0 keeps the Go default")
	authToken := flag.String("auth-token", "", "when set, every request must carry this __AUTH token")
	rate := flag.Int64("rate", 0, "requests per second before rpcx refuses with a rate-limit error; 0 = off")
	etcd := flag.String("etcd", "", "register in etcd v3 at these members (HOST:PORT, comma-separated)")
	basePath := flag.String("base-path", "/rpcx_test", "registry key prefix (the client's basePath)")
	metadata := flag.String("metadata", "", "metadata registered with every service, a URL query string (weight=10&group=g1)")
	network := flag.String("network", "tcp", `"tcp" (binary rpcx, the HTTP gateway and JSON-RPC on one port) or "http" (CONNECT mode only: Serve("http", …))`)
	tlsCert := flag.String("tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key)")
	tlsKey := flag.String("tls-key", "", "the PEM private key of -tls-cert")
	flag.Parse()

	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	reg := registry{basePath: *basePath, metadata: *metadata}
	if *etcd != "" {
		reg.etcd = strings.Split(*etcd, ",")
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" || *tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			log.Fatal(err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if *network != "tcp" && *network != "http" {
		log.Fatalf("-network %q: want tcp or http", *network)
	}
	if err := run(*addr, *network, tlsConfig, *authToken, *rate, reg); err != nil {
		log.Fatal(err)
	}
}

// registry says where to register the services; no etcd members: nowhere.
type registry struct {
	etcd     []string
	basePath string
	metadata string
}

// etcdUpdateInterval is how often rpcx-etcd's plugin re-puts a node key that has gone missing. It
// is not the lease TTL: the plugin's lease is 30 s whatever this says.
const etcdUpdateInterval = 5 * time.Second

func run(addr, network string, tlsConfig *tls.Config, authToken string, rate int64, reg registry) error {
	var options []server.OptionFn
	if tlsConfig != nil {
		options = append(options, server.WithTLSConfig(tlsConfig))
	}
	s := server.NewServer(options...)
	if authToken != "" {
		s.AuthFunc = func(ctx context.Context, req *protocol.Message, token string) error {
			if token == authToken {
				return nil
			}
			return errors.New("invalid token")
		}
	}
	if rate > 0 {
		// Non-blocking token bucket of `rate` tokens, refilled one every 1/rate s: a burst of up to
		// `rate` requests passes, the rest get "request reached rate limit" (rpcx-protocol.md 4.10).
		s.Plugins.Add(serverplugin.NewReqRateLimitingPlugin(time.Second/time.Duration(rate), rate, false))
	}
	// Listen here rather than in Serve so that "listening on" is printed only once the port is bound,
	// and with the real port when addr ends in :0 (which the registry needs before any service).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		// As Server.Serve does for "tcp" with a TLS config (ServeListener leaves it to the caller);
		// the gateway's cmux then sniffs what arrives inside TLS.
		ln = tls.NewListener(ln, tlsConfig)
	}
	if len(reg.etcd) > 0 {
		// As rpcx-etcd's README: the plugin is added before the services, which it registers one
		// RegisterName call late (its last service waits for the first UpdateInterval).
		p := &etcdplugin.EtcdV3RegisterPlugin{
			ServiceAddress: "tcp@" + ln.Addr().String(),
			EtcdServers:    reg.etcd,
			BasePath:       reg.basePath,
			UpdateInterval: etcdUpdateInterval,
		}
		if err := p.Start(); err != nil {
			return err
		}
		s.Plugins.Add(p)
	}
	if err := s.RegisterName("Arith", new(Arith), reg.metadata); err != nil {
		return err
	}
	if err := s.RegisterName("Echo", new(Echo), reg.metadata); err != nil {
		return err
	}
	if err := s.RegisterName("Push", &Push{srv: s}, reg.metadata); err != nil {
		return err
	}
	if err := s.RegisterName("Hello", new(Hello), reg.metadata); err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- s.ServeListener(network, ln) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	return nil
}
