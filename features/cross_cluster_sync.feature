@sync
Feature: Cross-cluster endpoint sync
  Each cluster's istiod reads the other cluster's API server through a remote
  secret (made like `istioctl create-remote-secret`: the other cluster's
  server, CA and the token of its istio-reader service account). From both
  clusters it computes the endpoints of every service for every sidecar. On a
  multi-network mesh a sidecar must get its own network's pods directly and the
  other network's pods only as the other cluster's east-west gateway addresses
  (its NLB's public IPs, one per availability zone) on 15443: remote pod IPs are
  unreachable across networks.

  The runbook read this with `istioctl proxy-config endpoint <sleep pod> | grep
  helloworld`; here the same table is read from the sleep pod's Envoy and
  compared with what it must be.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  |
      | eks-1   | cluster1      | network1 |
      | eks-2   | cluster2      | network2 |
    And the deployment is provisioned in stages on the target

  Scenario Outline: istiod in <cluster> reads the other cluster
    Then the remote secret for the other cluster in "<cluster>" is well-formed and its server answers with its token
    And istiod in "<cluster>" reports the other cluster synced

    Examples:
      | cluster |
      | eks-1   |
      | eks-2   |

  Scenario Outline: The sleep pod in <cluster> gets helloworld locally and through the other network's gateway
    Then the sleep pod's Envoy in "<cluster>" holds the local helloworld pods on port 5000 and exactly the other cluster's NLB addresses on port 15443, all HEALTHY
    And none of those endpoints is a pod IP of the other cluster

    Examples:
      | cluster |
      | eks-1   |
      | eks-2   |
