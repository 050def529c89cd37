package chlocal_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vigilhq/vigil/warehouse/chlocal"
)

// Example starts the embedded ClickHouse on a data directory, serves its HTTP
// interface on a free loopback port and talks to it with clickhouse-go.
func Example() {
	ctx := context.Background()
	e, err := chlocal.Open(ctx, chlocal.Config{DataDir: "./data/clickhouse"})
	if errors.Is(err, chlocal.ErrLibraryNotFound) || errors.Is(err, chlocal.ErrLibraryInvalid) {
		log.Fatal(err) // "… run `make deps` to fetch it, or … --clickhouse clickhouse://…"
	}
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close(ctx)
	srv, err := e.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(ctx)

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr()}, Protocol: clickhouse.HTTP})
	if err != nil {
		log.Fatal(err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		log.Fatal(err)
	}
	fmt.Println(version)
}
