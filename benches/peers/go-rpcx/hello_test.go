package main

import (
	"context"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/smallnest/rpcx/codec"

	"ringrpc/benches/peers/go-rpcx/proto"
)

// benchmarkArgs is the message rpcx-benchmark's client sends (proto.PrepareArgs there): every
// scalar field set, integers to 100000, booleans to true, strings to the same 54-byte text; the
// repeated field5 left empty.
func benchmarkArgs() *proto.BenchmarkMessage {
	b := true
	var i int32 = 100000
	s := "许多往事在眼前一幕一幕，变的那麼模糊"
	var args proto.BenchmarkMessage
	v := reflect.ValueOf(&args).Elem()
	for k := 0; k < v.NumField(); k++ {
		field := v.Field(k)
		if field.Kind() == reflect.Ptr {
			switch field.Type().Elem().Kind() {
			case reflect.Int32:
				field.Set(reflect.ValueOf(&i))
			case reflect.Bool:
				field.Set(reflect.ValueOf(&b))
			case reflect.String:
				field.Set(reflect.ValueOf(&s))
			}
			continue
		}
		switch field.Kind() {
		case reflect.Int32, reflect.Int64:
			field.SetInt(100000)
		case reflect.Bool:
			field.SetBool(true)
		case reflect.String:
			field.SetString(s)
		}
	}
	return &args
}

// helloRequestHex is the 581-byte request of rpcx-benchmark, benchmarkArgs() encoded.
const helloRequestHex = "" +
	"0a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9" +
	"babce6a8a1e7b38a10a08d0618a08d062236e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880" +
	"e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a30a08d063a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbc" +
	"e5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a4a36e8aeb8e5a49ae5be80e4" +
	"ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a60016801" +
	"70018001a08d06880101920136e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc" +
	"8ce58f98e79a84e982a3e9babce6a8a1e7b38ab001a08d06b801a08d06c00101c801a08d06e801a08d06f00101d80301" +
	"e003a08d069804a08d06a004a08d06f00401800501880501a006a08d06a806a08d06b20636e8aeb8e5a49ae5be80e4ba" +
	"8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38aba0636e8ae" +
	"b8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8" +
	"a1e7b38ac006a08d068008a08d068a0836e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5" +
	"b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a9008a08d069808a08d06b009a08d06f810a08d068011a08d06" +
	"c011a08d06"

// helloReplyHex is Hello.Say's reply to it: field1 "OK" (the 54-byte text before), field2 100.
const helloReplyHex = "" +
	"0a024f4b106418a08d062236e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8c" +
	"e58f98e79a84e982a3e9babce6a8a1e7b38a30a08d063a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880" +
	"e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a4a36e8aeb8e5a49ae5be80e4ba8be59ca8e7" +
	"9cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a6001680170018001a08d" +
	"06880101920136e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a" +
	"84e982a3e9babce6a8a1e7b38ab001a08d06b801a08d06c00101c801a08d06e801a08d06f00101d80301e003a08d0698" +
	"04a08d06a004a08d06f00401800501880501a006a08d06a806a08d06b20636e8aeb8e5a49ae5be80e4ba8be59ca8e79c" +
	"bce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38aba0636e8aeb8e5a49ae5be" +
	"80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38ac006" +
	"a08d068008a08d068a0836e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce5" +
	"8f98e79a84e982a3e9babce6a8a1e7b38a9008a08d069808a08d06b009a08d06f810a08d068011a08d06c011a08d06"

// TestHelloSay checks the request and reply bytes of Hello.Say against the golden hex that the Rust
// side checks too (server/tests/hello.rs, bench-client's workload tests).
func TestHelloSay(t *testing.T) {
	pb := codec.PBCodec{}
	req, err := pb.Encode(benchmarkArgs())
	if err != nil {
		t.Fatal(err)
	}
	if len(req) != 581 || hex.EncodeToString(req) != helloRequestHex {
		t.Fatalf("request is %d bytes %x, want 581 bytes %s", len(req), req, helloRequestHex)
	}

	var args, reply proto.BenchmarkMessage
	if err := pb.Decode(req, &args); err != nil {
		t.Fatal(err)
	}
	if err := new(Hello).Say(context.Background(), &args, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Field1 != "OK" || reply.Field2 != 100 {
		t.Fatalf("reply field1 %q, field2 %d; want OK, 100", reply.Field1, reply.Field2)
	}
	res, err := pb.Encode(&reply)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(res) != helloReplyHex {
		t.Fatalf("reply %x, want %s", res, helloReplyHex)
	}
}
