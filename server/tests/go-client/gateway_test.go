package goclient

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// gatewayResult is what a gateway or JSON-RPC call answered.
type gatewayResult struct {
	status int
	header http.Header
	body   string
}

// gatewayCall POSTs body to url with headers through hc and reads the whole answer.
func gatewayCall(t *testing.T, hc *http.Client, url string, headers map[string]string, body string) gatewayResult {
	t.Helper()
	req, err := http.NewRequestWithContext(callContext(t), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return gatewayResult{status: res.StatusCode, header: res.Header, body: string(data)}
}

// TestGateway calls through the HTTP gateway with net/http and the headers rpcx documents
// (docs/protocol.md 4.17), on the binary port.
func TestGateway(t *testing.T) {
	mul := map[string]string{"X-RPCX-SerializeType": "1", "X-RPCX-ServiceMethod": "Mul", "X-RPCX-MessageID": "77"}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range mul {
			h[k] = v
		}
		for k, v := range extra {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	cases := []struct {
		name       string
		path       string
		headers    map[string]string
		body       string
		wantStatus int
		wantBody   string
		wantError  string // X-RPCX-ErrorMessage; "" = no error
	}{
		{"path_from_url", "/Arith", mul, `{"A":6,"B":7}`, 200, `{"C":42}`, ""},
		{"path_from_header", "/", with(map[string]string{"X-RPCX-ServicePath": "Arith"}), `{"A":2,"B":3}`, 200, `{"C":6}`, ""},
		{"go_client_message_type_spelling", "/Arith", with(map[string]string{"X-RPCX-MesssageType": "0"}), `{"A":1,"B":5}`, 200, `{"C":5}`, ""},
		{"missing_method", "/Arith", with(map[string]string{"X-RPCX-ServiceMethod": ""}), `{}`, 200, "", "empty servicemethod"},
		{"missing_serialize_type", "/Arith", with(map[string]string{"X-RPCX-SerializeType": ""}), `{}`, 200, "", "empty serialized type"},
		{"missing_path", "/", mul, `{}`, 200, "", "empty servicepath"},
		{"unknown_method", "/Arith", with(map[string]string{"X-RPCX-ServiceMethod": "Nope"}), `{}`, 500, "", "rpcx: can't find method Nope"},
		{"unknown_service", "/Nope", mul, `{}`, 500, "", "rpcx: can't find service Nope"},
		{"service_error", "/Arith", with(map[string]string{"X-RPCX-ServiceMethod": "Div"}), `{"A":1,"B":0}`, 500, "", "divide by zero"},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			res := gatewayCall(t, http.DefaultClient, "http://"+env.addr+tc.path, tc.headers, tc.body)
			if res.status != tc.wantStatus {
				t.Fatalf("status %d, want %d (headers %v, body %q)", res.status, tc.wantStatus, res.header, res.body)
			}
			if got := res.header.Get("X-RPCX-ErrorMessage"); got != tc.wantError {
				t.Fatalf("X-RPCX-ErrorMessage %q, want %q", got, tc.wantError)
			}
			if tc.wantError != "" {
				if res.header.Get("X-RPCX-MessageStatusType") != "Error" || res.body != "" {
					t.Fatalf("error answer: status type %q, body %q; want Error and no body", res.header.Get("X-RPCX-MessageStatusType"), res.body)
				}
				return
			}
			if strings.TrimSpace(res.body) != tc.wantBody {
				t.Fatalf("body %q, want %q", res.body, tc.wantBody)
			}
			if res.header.Get("X-RPCX-MessageID") != "77" || res.header.Get("X-RPCX-ServiceMethod") == "" {
				t.Fatalf("headers %v: want the message id and method echoed", res.header)
			}
			if _, ok := res.header["X-Rpcx-Meta"]; !ok {
				t.Fatalf("headers %v: want X-RPCX-Meta", res.header)
			}
		})
	}

	runCase(t, "metadata_both_ways", func(t *testing.T) {
		meta := url.Values{"trace": {"abc 1"}, "user": {"u"}}.Encode()
		res := gatewayCall(t, http.DefaultClient, "http://"+env.addr+"/Echo", map[string]string{
			"X-RPCX-SerializeType": "0", "X-RPCX-ServiceMethod": "Echo", "X-RPCX-Meta": meta,
		}, "raw bytes")
		if res.status != 200 || res.body != "raw bytes" {
			t.Fatalf("Echo.Echo: %d %q", res.status, res.body)
		}
		got, err := url.ParseQuery(res.header.Get("X-RPCX-Meta"))
		if err != nil || got.Get("trace") != "abc 1" || got.Get("user") != "u" {
			t.Fatalf("response X-RPCX-Meta %q (%v): want the request metadata back", res.header.Get("X-RPCX-Meta"), err)
		}
	})

	runCase(t, "keep_alive_connection_reused", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		for i := 0; i < 5; i++ {
			res := gatewayCall(t, hc, "http://"+env.addr+"/Arith", mul, `{"A":3,"B":3}`)
			if res.status != 200 || strings.TrimSpace(res.body) != `{"C":9}` {
				t.Fatalf("call %d: %d %q", i, res.status, res.body)
			}
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			token      func(string) string
			wantStatus int
		}{
			{"right_token", func(tok string) string { return tok }, 200},
			{"wrong_token", func(tok string) string { return "wrong-" + tok }, 401},
			{"no_token", func(string) string { return "" }, 401},
		} {
			runCase(t, tc.name, func(t *testing.T) {
				addr, token := requireAuthServer(t)
				h := with(nil)
				if tok := tc.token(token); tok != "" {
					h["Authorization"] = tok
				}
				res := gatewayCall(t, http.DefaultClient, "http://"+addr+"/Arith", h, `{"A":4,"B":5}`)
				if res.status != tc.wantStatus {
					t.Fatalf("status %d, want %d", res.status, tc.wantStatus)
				}
				if tc.wantStatus == 401 && res.header.Get("X-RPCX-ErrorMessage") != "invalid token" {
					t.Fatalf("X-RPCX-ErrorMessage %q, want invalid token", res.header.Get("X-RPCX-ErrorMessage"))
				}
				if tc.wantStatus == 200 && strings.TrimSpace(res.body) != `{"C":20}` {
					t.Fatalf("body %q", res.body)
				}
			})
		}
	})
}

// TestJSONRPC calls JSON-RPC 2.0 on the binary port (docs/protocol.md 4.18).
func TestJSONRPC(t *testing.T) {
	jsonrpc := map[string]string{"X-JSONRPC-2.0": "true"}
	// A connection of its own per call: Go's cmux routes a whole connection by its first request,
	// so a kept-alive connection that first went to the gateway never reaches JSON-RPC there.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	cases := []struct {
		name     string
		body     string
		want     string // the exact body; "" = empty
		goDiffer string // why the Go server is skipped ("" = both)
	}{
		{"call", `{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":6,"B":7},"id":1}`,
			`{"jsonrpc":"2.0","result":{"C":42},"id":1}`, ""},
		{"string_id", `{"jsonrpc":"2.0","method":"Arith.Add","params":{"A":1,"B":2},"id":"a"}`,
			`{"jsonrpc":"2.0","result":{"C":3},"id":"a"}`, ""},
		{"unknown_method", `{"jsonrpc":"2.0","method":"Arith.Nope","params":{},"id":2}`,
			`{"jsonrpc":"2.0","error":{"code":-32603,"message":"rpcx: can't find method Nope","data":null},"id":2}`, ""},
		{"method_without_dot", `{"jsonrpc":"2.0","method":"Mul","params":{},"id":3}`,
			`{"jsonrpc":"2.0","error":{"code":-32601,"message":"must contains servicepath and method","data":null},"id":3}`, ""},
		{"notification", `{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":1,"B":1}}`, "", ""},
		{"batch", `[{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":2,"B":2},"id":1},{"jsonrpc":"2.0","method":"Arith.Add","params":{"A":1,"B":1}}]`,
			`[{"jsonrpc":"2.0","result":{"C":4},"id":1}]`, "Go refuses batches with -32700"},
		{"call_without_params", `{"jsonrpc":"2.0","method":"Arith.Mul","id":4}`,
			`{"jsonrpc":"2.0","error":{"code":-32602,"message":"invalid params: params is missing or null","data":null},"id":4}`,
			"Go's handler dereferences the missing params and panics"},
	}
	for _, tc := range cases {
		runCase(t, tc.name, func(t *testing.T) {
			if tc.goDiffer != "" && env.kind == "go" {
				skip(t, tc.goDiffer)
			}
			res := gatewayCall(t, fresh, "http://"+env.addr+"/", jsonrpc, tc.body)
			if res.status != 200 || res.body != tc.want {
				t.Fatalf("got %d %q, want 200 %q", res.status, res.body, tc.want)
			}
			if tc.want != "" && env.kind == "ringrpc" && res.header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", res.header.Get("Content-Type"))
			}
		})
	}

	runCase(t, "gateway_and_jsonrpc_on_one_connection", func(t *testing.T) {
		if env.kind == "go" {
			skip(t, "Go's cmux routes a whole connection by its first request")
		}
		hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
		res := gatewayCall(t, hc, "http://"+env.addr+"/Arith", map[string]string{
			"X-RPCX-SerializeType": "1", "X-RPCX-ServiceMethod": "Mul",
		}, `{"A":2,"B":5}`)
		if strings.TrimSpace(res.body) != `{"C":10}` {
			t.Fatalf("gateway: %d %q", res.status, res.body)
		}
		res = gatewayCall(t, hc, "http://"+env.addr+"/", jsonrpc, `{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":3,"B":5},"id":9}`)
		if res.body != `{"jsonrpc":"2.0","result":{"C":15},"id":9}` {
			t.Fatalf("JSON-RPC on the same connection: %d %q", res.status, res.body)
		}
	})

	runCase(t, "parse_error", func(t *testing.T) {
		res := gatewayCall(t, fresh, "http://"+env.addr+"/", jsonrpc, `{"jsonrpc":`)
		if res.status != 200 || !strings.Contains(res.body, `"code":-32700`) || strings.Contains(res.body, `"id"`) {
			t.Fatalf("got %d %q: want -32700 without an id", res.status, res.body)
		}
	})
}
