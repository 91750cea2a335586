// Package goclient is the rpcx conformance suite: `go test` cases that drive a server through the
// stock Go rpcx client (github.com/smallnest/rpcx/client) and check what comes back.
//
// The same cases run against the Go rpcx reference server (benches/peers/go-rpcx), which proves the
// cases right, and against ringrpc, which they are meant to check. Run it through
// scripts/go-suite.sh, which starts both servers and sets the environment:
//
//	RPCX_ADDR         server under test (required; without it the suite exits at once)
//	RPCX_ADDR2        a second server of the same kind, for the multi-server cases
//	RPCX_SERVER_KIND  "go" or "ringrpc" (names the run in the Markdown table)
//	RPCX_AUTH_ADDR    a server started with an auth token, and RPCX_AUTH_TOKEN that token
//	RPCX_RATE_ADDR    a server started with a request-rate limit, and RPCX_RATE that rate (per s)
//	RPCX_ETCD         an etcd v3 endpoint (HOST:PORT) for the etcd cases, which start their own
//	                  fleets of RPCX_FLEET_BIN (a server binary of kind RPCX_SERVER_KIND) there
//	RPCX_MARKDOWN     (or -markdown FILE) file to write a Markdown table of every case and its result
//
// The demo services the cases call (Arith, Echo, Push) are specified in
// benches/peers/go-rpcx/README.md; rpcx-protocol.md is the protocol.
package goclient
