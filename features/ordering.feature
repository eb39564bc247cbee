@ordering
Feature: Stage ordering
  The runbook applies in three stages because order matters:
  - istiod reads `cacerts` only when it starts. Started first, each istiod makes
    its own self-signed root and keeps it until restarted, and the two clusters
    no longer trust each other: cross-network calls fail with
    CERTIFICATE_VERIFY_FAILED while local calls still work.
  - The AWS load balancer controller must run before the gateway Services
    exist, so that it turns them into internet-facing network load balancers.
  - NLBs, their network interfaces and security groups are not in Terraform's
    state: they must be deleted through their Services before the VPCs.

  The plan lives in fixtures/stages.yaml; every provisioner executes it in
  order and checks each stage's preconditions before starting it. The first
  scenarios read the order back from any target; the last one runs a wrong
  order on a fresh twin to show what it breaks and that the checks catch it.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  | helloworld |
      | eks-1   | cluster1      | network1 | v1         |
      | eks-2   | cluster2      | network2 | v2         |
    And the deployment is provisioned in stages on the target

  # The seed plan's preconditions: EKS clusters ACTIVE, the AWS load balancer controller.
  @provisions @aws
  Scenario: Each stage started only once its preconditions held
    Then each stage started only once its preconditions held:
      | stage | preconditions                                        |
      | 1     |                                                      |
      | 2     | clusters-active, cacerts-present                     |
      | 3     | istiod-available, load-balancer-controller-available |

  Scenario: istiod started after cacerts existed and hands out its root
    Then in each cluster istiod started after cacerts existed and serves the cacerts root in "sample"
    And both clusters serve one root in "sample"

  @aws
  Scenario: The load balancer controller ran before the gateway Services existed
    Then in each cluster the load balancer controller was running before the east-west gateway Service was created
    And each east-west gateway load balancer is of type "network" with scheme "internet-facing"

  @twin
  Scenario: istiod started before cacerts leaves the clusters with different roots
    Given a separate deployment on a fresh twin, provisioned with the plan "plans/istiod-before-cacerts.yaml"
    Then in each cluster the ordering check of istiod and cacerts fails, naming the root istiod serves
    When the sleep pod in "eks-1" sends 20 requests to "helloworld.sample:5000/hello"
    Then only the local version answers and every other answer is a 503 with "CERTIFICATE_VERIFY_FAILED"

  @twin
  Scenario: Gateways installed before the load balancer controller get no load balancer until it runs
    Given a separate deployment on a fresh twin, provisioned with the plan "plans/gateway-before-controller.yaml"
    Then the east-west gateway of "eks-1" gets no load balancer address, with a diagnosis naming "no load balancer address"
    When the AWS load balancer controller is installed in both clusters
    Then each east-west gateway load balancer is of type "network" with scheme "internet-facing"
