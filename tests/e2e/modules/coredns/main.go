// CoreDNS, linked with the plugins of the cluster's Corefile (tests/e2e/cluster/addons/coredns.yaml)
// plus `forward` and `log`, kubeadm's default set, instead of all 58: CoreDNS's documented
// compile-time plugin selection ("build with external golang source code",
// https://coredns.io/2017/07/25/compile-time-enabling-or-disabling-plugins/). The full binary also
// links the AWS, Azure, Google Cloud, etcd and Nomad clients, which a cluster DNS here never uses
// (cold build 224 s instead of 125 s). tests/e2e/test_build_pins.py checks the Corefile against
// this list; tests/e2e/build keys the build on this file.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
