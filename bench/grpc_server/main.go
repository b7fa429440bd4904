// Command grpc_server is the benchmark's fast gRPC target: the standard health
// service (always SERVING) plus server reflection, on one loopback address.
//
// It counts every unary call it answers; `GET /count` on the --stats address
// returns that total as plain text, so the harness can measure what arrived.
// It is kar98k's own benchmark fixture, pinned by the harness to one core
// (taskset and GOMAXPROCS=1).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

var calls atomic.Uint64

func count(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	calls.Add(1)
	return handler(ctx, req)
}

func loopback(addr string) bool {
	return strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "[::1]")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "loopback host:port for gRPC")
	stats := flag.String("stats", "127.0.0.1:0", "loopback host:port for GET /count")
	flag.Parse()
	if !loopback(*listen) || !loopback(*stats) {
		log.Fatalf("refusing non-loopback addresses %q %q", *listen, *stats)
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	statsLis, err := net.Listen("tcp", *stats)
	if err != nil {
		log.Fatalf("listen stats: %v", err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(count))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)

	mux := http.NewServeMux()
	mux.HandleFunc("/count", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d\n", calls.Load())
	})
	go func() { _ = http.Serve(statsLis, mux) }()

	// The harness reads the bound addresses from the first line of stdout.
	fmt.Printf("listening %s stats %s\n", lis.Addr().String(), statsLis.Addr().String())
	_ = os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Stop()
	}()
	if err := srv.Serve(lis); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
