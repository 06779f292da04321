package emulator

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/piivault/piivault/vault/vaulttest"
)

// TestNodeSDK runs nodetest/sdk.mjs, which drives the official WorkOS Node SDK against the
// emulator on 127.0.0.1. It needs node and the SDK installed with `npm ci` in nodetest.
//
// NOTE: @workos-inc/node 12.3.0 declares node >= 22.11, and npm ci only warns about it
// (EBADENGINE). The calls of sdk.mjs pass on Node v20.20.2.
func TestNodeSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed")
	}
	sdk := filepath.Join("nodetest", "node_modules", "@workos-inc", "node", "package.json")
	if _, err := os.Stat(sdk); err != nil {
		t.Skip("skipping: the Node SDK is not installed; run `npm ci` in vault/emulator/nodetest")
	}

	e, srv := startEmulator(t, vaulttest.NewMemory())
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sdk.mjs")
	cmd.Dir = "nodetest"
	cmd.Env = append(os.Environ(), "WORKOS_EMULATOR_PORT="+port, "WORKOS_API_KEY="+testAPIKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node sdk.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)

	// the script must have talked to this emulator, through every object endpoint
	for _, ep := range []Endpoint{
		EndpointCreate, EndpointRead, EndpointReadByName, EndpointDescribe, EndpointUpdate,
		EndpointVersions, EndpointList, EndpointDelete, EndpointCreateDataKey, EndpointDecryptDataKey,
	} {
		if e.CallCount(ep) == 0 {
			t.Errorf("no %s call reached the emulator", ep)
		}
	}
}
