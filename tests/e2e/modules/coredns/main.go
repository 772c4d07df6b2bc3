// CoreDNS, linked with the plugins of the cluster's Corefile (tests/e2e/cluster/addons/coredns.yaml)
// plus `forward` and `log`, kubeadm's default set, instead of all 58: CoreDNS's documented
// compile-time plugin selection ("build with external golang source code",
// https://coredns.io/2017/07/25/compile-time-enabling-or-disabling-plugins/). The full binary also
// links the AWS, Azure, Google Cloud, etcd and Nomad clients, which a cluster DNS here never uses,
// and took four times as long to build. test_coredns_plugins.py checks the Corefile against this list.
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
