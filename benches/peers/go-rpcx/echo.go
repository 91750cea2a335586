package main

import (
	"context"
	"strconv"
	"time"

	"github.com/smallnest/rpcx/share"
)

// Echo is the raw-bytes demo service, registered as "Echo". Its methods take and return
// SerializeNone payloads.
type Echo struct{}

// Echo replies with the payload unchanged and copies every request metadata pair into the response
// metadata.
func (*Echo) Echo(ctx context.Context, args []byte, reply *[]byte) error {
	req, _ := ctx.Value(share.ReqMetaDataKey).(map[string]string)
	res, _ := ctx.Value(share.ResMetaDataKey).(map[string]string)
	if res != nil {
		for k, v := range req {
			res[k] = v
		}
	}
	*reply = args
	return nil
}

// Sleep takes a decimal number of milliseconds, sleeps that long and replies with the same payload.
func (*Echo) Sleep(ctx context.Context, args []byte, reply *[]byte) error {
	ms, err := strconv.ParseInt(string(args), 10, 64)
	if err != nil {
		return err
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	*reply = args
	return nil
}

// Deadline replies with the decimal number of milliseconds left before the context deadline, which
// the server derives from the __ServerTimeout metadata, or "none" when the context has no deadline.
func (*Echo) Deadline(ctx context.Context, args []byte, reply *[]byte) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		*reply = []byte("none")
		return nil
	}
	*reply = strconv.AppendInt(nil, time.Until(deadline).Milliseconds(), 10)
	return nil
}
