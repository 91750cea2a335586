package main

import (
	"context"
	"errors"
	"net"

	"github.com/smallnest/rpcx/server"
)

// Push is the server-push demo service, registered as "Push".
type Push struct {
	srv *server.Server
}

// Subscribe takes a raw payload, sends it back to the calling connection as a server push
// (Request, oneway, SerializeNone, path "Push", method "Notify", no metadata), and then replies with
// the same payload.
func (p *Push) Subscribe(ctx context.Context, args []byte, reply *[]byte) error {
	conn, ok := ctx.Value(server.RemoteConnContextKey).(net.Conn)
	if !ok {
		return errors.New("push: no connection in context")
	}
	if err := p.srv.SendMessage(conn, "Push", "Notify", nil, args); err != nil {
		return err
	}
	*reply = args
	return nil
}
