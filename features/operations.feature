@operations
Feature: Day-2 operations under continuous traffic
  Installing the mesh is the easy part; outages come later, when someone
  rotates a credential, replaces a gateway or takes a cluster out. Each
  operation here is done while a traffic probe keeps sending requests from
  every cluster's sleep pod through its sidecar, as the load-balancing feature
  sends them, and the probe's timeline is judged: no failed request where
  Istio and AWS promise none, failures only inside the window the operation
  opens where they do, and the time until both helloworld versions answer
  every cluster again.

  The probe sends one request at a time per cluster (at most four a second
  on EKS; on the twin at its compressed pace), each within the deadline of
  one API call, and stops when its scenario ends. Scenarios mark the instants
  that matter ("gateway deleted", "new NLB healthy") on its timeline. The
  report page draws the timeline: a row per cluster, each request coloured by
  the version that answered or red for an error, and the marks as vertical
  lines.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  | helloworld |
      | eks-1   | cluster1      | network1 | v1         |
      | eks-2   | cluster2      | network2 | v2         |
    And the deployment is provisioned in stages on the target

  Scenario: The probe sees an undisturbed mesh answer every request from both versions
    The seed deployment, with nothing done to it: the baseline every operation
    is measured against. Twenty answers per cluster make a version that never
    answers a cluster a real finding (both versions are equally likely there:
    a silent one passes unseen once in a million runs).

    Given a traffic probe runs from every cluster's sleep pod to "helloworld.sample:5000/hello"
    When the probe has 20 answers from every cluster
    And the probe marks "20 answers each"
    Then no probe request failed
    And both helloworld versions answered every cluster's probe
    And both helloworld versions answer every cluster's probe again within 1 minute of "20 answers each"
