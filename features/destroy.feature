@destroy @twin
Feature: Destroy
  The load balancer controller made the NLBs, their network interfaces and
  security groups; Terraform does not know them. The runbook therefore destroys
  in two stages: first the Helm releases and the multicluster chart, so that the
  controller, still running, deletes what it made; then, once no Service of
  type LoadBalancer is left, everything else. Deleting the network first fails:
  AWS refuses to delete a VPC that still has dependencies.

  Both scenarios work on a separate deployment on a fresh twin, so that the
  run's own deployment stays for the other features.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  | vpc       |
      | eks-1   | cluster1      | network1 | eks-1-vpc |
      | eks-2   | cluster2      | network2 | eks-2-vpc |

  Scenario: A staged teardown leaves nothing behind
    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    When meshspec destroys it in the runbook's order
    Then no Service of type LoadBalancer and no load balancer resource of either cluster remained when the clusters were deleted
    And a leak sweep by tags finds nothing of either cluster

  Scenario: Deleting a VPC first fails with DependencyViolation
    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    When the VPC of "eks-1" is deleted before anything else
    Then AWS refuses with "DependencyViolation"
    And the VPC of "eks-1" still exists
