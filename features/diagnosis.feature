@diagnosis @twin
Feature: Diagnosis
  When the mesh does not work, the run must say why. Each fault below is a
  misconfiguration seen in the field (the troubleshooting checklist of Istio's
  multicluster page and the runbook's own pitfalls). A fresh twin is
  provisioned with it, every check of the runbook runs, and a failing check
  names the cause and the fix in a `diagnosis:` line. Different faults give
  different diagnoses; without a fault every check passes (the other features).

  `meshspec faults` lists them; `meshspec run --fault NAME` runs every feature
  against a twin provisioned with one and prints the diagnoses.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  |
      | eks-1   | cluster1      | network1 |
      | eks-2   | cluster2      | network2 |

  Scenario Outline: The fault "<fault>" is caught and diagnosed
    Given a separate deployment on a fresh twin, provisioned with the fault "<fault>"
    When every check of the runbook runs against it
    Then a check fails with a diagnosis naming "<cause>"

    Examples:
      | fault                           | cause                                                    |
      | cacerts-missing                 | cacerts is missing from istio-system                     |
      | different-roots                 | cacerts come from different roots                        |
      | istiod-before-cacerts           | istiod started before cacerts existed                    |
      | remote-secret-missing           | has no remote secret for                                 |
      | remote-secret-wrong-key         | data key is not the cluster ID                           |
      | bad-reader-token                | rejects the remote secret's token                        |
      | gateway-without-network-label   | lacks topology.istio.io/network                          |
      | gateway-without-address         | has no load balancer address                             |
      | nlb-hostname-unresolvable       | does not resolve                                         |
      | nlb-targets-unhealthy           | targets behind the 15443 listener are not healthy        |
      | load-balancer-controller-absent | the AWS load balancer controller is not running          |
      | cross-network-gateway-missing   | the Gateway istio-ingress/cross-network-gateway is missing |
      | remote-api-unreachable          | named in the remote secret does not answer               |
      | reader-role-without-pods        | is not allowed to list pods cluster-wide                 |
