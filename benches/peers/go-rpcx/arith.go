package main

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Args is the argument of every Arith method.
//
// One type serves the three codecs of the "Arith" service path:
//   - JSON (encoding/json): field names as written and no omitempty, so a zero reply is {"C":0};
//   - MsgPack (vmihailenco/msgpack/v5): a map keyed by field name, "A" and "B";
//   - Protobuf: rpcx's PBCodec uses Marshal/Unmarshal below (the gogo proto.Marshaler and
//     proto.Unmarshaler interfaces), which write the layout of
//     `message ProtoArgs { int64 A = 1; int64 B = 2; }`.
//
// The protobuf code is written by hand instead of generated: protoc-gen-go adds `json:",omitempty"`
// tags, which would turn the JSON reply {"C":0} into {}.
type Args struct {
	A int64 `protobuf:"varint,1,opt,name=A,proto3"`
	B int64 `protobuf:"varint,2,opt,name=B,proto3"`
}

// Reply is the reply of every Arith method; protobuf layout `message ProtoReply { int64 C = 1; }`.
type Reply struct {
	C int64 `protobuf:"varint,1,opt,name=C,proto3"`
}

// Reset zeroes the arguments; rpcx's server pools argument objects that implement Reset.
func (a *Args) Reset() { *a = Args{} }

// String implements the gogo/golang-protobuf v1 Message interface.
func (a *Args) String() string { return fmt.Sprintf("A:%d B:%d", a.A, a.B) }

// ProtoMessage marks Args as a protobuf message.
func (*Args) ProtoMessage() {}

// Marshal encodes the protobuf wire form; proto3 leaves zero fields out.
func (a *Args) Marshal() ([]byte, error) {
	return appendInt64(appendInt64(nil, 1, a.A), 2, a.B), nil
}

// Unmarshal decodes the protobuf wire form.
func (a *Args) Unmarshal(data []byte) error {
	*a = Args{}
	return unmarshalInt64s(data, map[protowire.Number]*int64{1: &a.A, 2: &a.B})
}

// Reset zeroes the reply; rpcx's server pools reply objects that implement Reset.
func (r *Reply) Reset() { *r = Reply{} }

// String implements the gogo/golang-protobuf v1 Message interface.
func (r *Reply) String() string { return fmt.Sprintf("C:%d", r.C) }

// ProtoMessage marks Reply as a protobuf message.
func (*Reply) ProtoMessage() {}

// Marshal encodes the protobuf wire form; C == 0 gives an empty payload.
func (r *Reply) Marshal() ([]byte, error) { return appendInt64(nil, 1, r.C), nil }

// Unmarshal decodes the protobuf wire form.
func (r *Reply) Unmarshal(data []byte) error {
	*r = Reply{}
	return unmarshalInt64s(data, map[protowire.Number]*int64{1: &r.C})
}

func appendInt64(b []byte, num protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// unmarshalInt64s reads varint fields into dst by field number, skips unknown fields, and lets the
// last occurrence of a field win, as protobuf decoders do.
func unmarshalInt64s(data []byte, dst map[protowire.Number]*int64) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if p, ok := dst[num]; ok && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(data)
			if n < 0 {
				return protowire.ParseError(n)
			}
			*p = int64(v)
			data = data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
	}
	return nil
}

// errDivideByZero is the error text of Arith.Div with B == 0 (golden vector V6).
var errDivideByZero = errors.New("divide by zero")

// Arith is the arithmetic demo service, registered as "Arith".
type Arith struct{}

// Mul sets C = A * B.
func (*Arith) Mul(ctx context.Context, args *Args, reply *Reply) error {
	reply.C = args.A * args.B
	return nil
}

// Add sets C = A + B.
func (*Arith) Add(ctx context.Context, args *Args, reply *Reply) error {
	reply.C = args.A + args.B
	return nil
}

// Div sets C = A / B. With B == 0 it returns "divide by zero" and leaves C at 0; rpcx still sends
// the encoded reply in the error response (rpcx-protocol.md 4.7).
func (*Arith) Div(ctx context.Context, args *Args, reply *Reply) error {
	if args.B == 0 {
		return errDivideByZero
	}
	reply.C = args.A / args.B
	return nil
}
