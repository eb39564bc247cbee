@readiness @aws
Feature: East-west gateway readiness
  Cross-network traffic enters a cluster through its east-west gateway. The
  AWS load balancer controller exposes the gateway's Service through an
  internet-facing network load balancer and writes its hostname into the
  Service status while the NLB is still provisioning. Nothing crosses networks
  until the NLB is active and EVERY target behind its 15443 listener is
  healthy, which takes minutes on AWS. The runbook looked at the first target
  only; these scenarios look at all of them, within a deadline, and name each
  target with its state and reason when the deadline passes.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  |
      | eks-1   | cluster1      | network1 |
      | eks-2   | cluster2      | network2 |
    And the deployment is provisioned in stages on the target

  Scenario Outline: The east-west gateway of <cluster> is ready for cross-network traffic
    When the east-west gateway Service of "<cluster>" has a load balancer hostname
    Then the load balancer with that DNS name is found among all load balancers
    And it is of type "network" with scheme "internet-facing" and becomes "active"
    And its listener on port 15443 forwards to a target group
    And every target of that target group becomes healthy
    And the hostname resolves to one public address per availability zone

    Examples:
      | cluster |
      | eks-1   |
      | eks-2   |
