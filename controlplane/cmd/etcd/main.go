// Command etcd is the control-plane test tier's etcd: a single-member server from the
// go.etcd.io/etcd/server/v3/embed package, listening on loopback only.
//
// Kubernetes ships etcd as a separate release binary that is not buildable from the module
// proxy as a `main` package of its own module path, so this tiny wrapper embeds the same server
// code. It takes only the few settings a throwaway test cluster needs and exits when its
// parent asks it to (SIGTERM or SIGINT), after closing the server cleanly.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func mustURL(raw string) url.URL {
	parsed, err := url.Parse(raw)
	if err != nil {
		log.Fatalf("etcd: invalid URL %q: %v", raw, err)
	}
	return *parsed
}

func main() {
	dataDir := flag.String("data-dir", "", "directory for the member's data (required)")
	clientURL := flag.String("listen-client-url", "http://127.0.0.1:2379", "client URL (loopback)")
	peerURL := flag.String("listen-peer-url", "http://127.0.0.1:2380", "peer URL (loopback)")
	unsafeNoSync := flag.Bool("unsafe-no-fsync", true, "skip fsync: the data is thrown away")
	flag.Parse()
	if *dataDir == "" {
		log.Fatal("etcd: --data-dir is required")
	}

	cfg := embed.NewConfig()
	cfg.Name = "default"
	cfg.Dir = *dataDir
	client, peer := mustURL(*clientURL), mustURL(*peerURL)
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	cfg.UnsafeNoFsync = *unsafeNoSync
	cfg.LogLevel = "warn"

	server, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("etcd: start: %v", err)
	}
	select {
	case <-server.Server.ReadyNotify():
		log.Printf("etcd: ready on %s", client.String())
	case <-time.After(60 * time.Second):
		server.Close()
		log.Fatal("etcd: not ready within 60s")
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-stop:
		log.Printf("etcd: %v, stopping", sig)
	case err := <-server.Err():
		log.Fatalf("etcd: %v", err)
	}
	server.Close()
}
