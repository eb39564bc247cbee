@load_balancing
Feature: Cross-cluster load balancing
  helloworld runs as v1 in the first cluster and v2 in the second. A request
  from a sleep pod goes through its sidecar, which picks among its helloworld
  endpoints by weight: the local pod directly, or the other cluster's east-west
  gateway, which passes the TLS connection through by SNI to a pod of its own
  network. Both versions must answer from either side, in the proportion the
  endpoint weights predict, and no request may fail.

  The runbook ran 10 `kubectl exec ... curl` per cluster and looked at the
  answers; here the answers are counted, the split is checked against the
  weights with a binomial tolerance, and the distribution is attached to the
  report.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  | helloworld |
      | eks-1   | cluster1      | network1 | v1         |
      | eks-2   | cluster2      | network2 | v2         |
    And the deployment is provisioned in stages on the target

  Scenario Outline: Requests from <cluster> reach both helloworld versions
    When the sleep pod in "<cluster>" sends 20 requests to "helloworld.sample:5000/hello"
    Then both helloworld versions answer
    And each version's share matches the endpoint weights within a binomial tolerance
    And no request gets an error answer

    Examples:
      | cluster |
      | eks-1   |
      | eks-2   |
