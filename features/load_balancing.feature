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
  weights with an exact binomial test, and the distribution is attached to the
  report. 300 requests per cluster: a correct split fails the test once in
  10 000 runs, and a 70/30 skew where 50/50 is predicted passes it less than
  once in 1 000 runs.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  | helloworld |
      | eks-1   | cluster1      | network1 | v1         |
      | eks-2   | cluster2      | network2 | v2         |
    And the deployment is provisioned in stages on the target

  Scenario Outline: Requests from <cluster> reach both helloworld versions
    When the sleep pod in "<cluster>" sends 300 requests to "helloworld.sample:5000/hello"
    Then both helloworld versions answer
    And each version's share passes an exact binomial test against the endpoint weights
    And no request gets an error answer

    Examples:
      | cluster |
      | eks-1   |
      | eks-2   |
