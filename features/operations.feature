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

  @disruptive
  Scenario: The istio-reader token of one cluster is rotated without a failed request
    The remote secret istiod in eks-1 reads eks-2 with carries a long-lived
    token of eks-2's istio-reader-service-account. Rotating it: a new token
    Secret, the remote secret rewritten with the new token (what applying
    `istioctl create-remote-secret` again does), then the old token revoked by
    deleting its Secret. Istio 1.20.2's secret controller sees the changed
    kubeconfig and rebuilds its client of the other cluster in place
    (pkg/kube/multicluster/secretcontroller.go, addSecret: "Updating
    cluster"); nothing restarts and no request fails.

    Given a deployment this scenario may disrupt
    And a traffic probe runs from every cluster's sleep pod to "helloworld.sample:5000/hello"
    When the probe has 5 answers from every cluster
    And a new istio-reader token is made in "eks-2"
    And the remote secret for the other cluster in "eks-1" is updated with its new istio-reader token
    And the probe marks "remote secret updated"
    Then istiod in "eks-1" rebuilds its client of the other cluster within 1 minute, without a restart
    When the old istio-reader token of "eks-2" is revoked
    And the probe marks "old token revoked"
    Then the remote secret for the other cluster in "eks-1" is well-formed and its server answers with its token
    And istiod in "eks-1" reports the other cluster synced
    And both helloworld versions answer every cluster's probe again within 1 minute of "old token revoked"
    And no probe request failed
    And istiod ran on without a restart in every cluster

  @twin
  Scenario: A remote secret left with the token that is then revoked is caught, naming the revoked token
    The rotation done wrong: the remote secret is applied again with the old
    token (an output of `istioctl create-remote-secret` saved before the
    rotation), then the old token is revoked. Kubernetes accepts a legacy
    service-account token only while its Secret exists and holds it
    (pkg/serviceaccount/legacy.go), so eks-2's API server now answers istiod's
    reads with 401. istiod's clusterz does not show it: the kubeconfig did not
    change, so istiod kept its client (secretcontroller.go addSecret: "skipping
    update (kubeconfig are identical)"), its informers keep what they read
    while their lists fail, and a cluster once synced stays "synced"
    (cluster.go HasSynced). Only reading eks-2 with the secret's own token
    finds it, before the stale endpoints or an istiod restart do.

    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    When a new istio-reader token is made in "eks-2"
    And the remote secret for the other cluster in "eks-1" is updated with its old istio-reader token
    And the old istio-reader token of "eks-2" is revoked
    Then istiod in "eks-1" reports the other cluster synced
    But the remote secret check of "eks-1" fails with a diagnosis naming "a stale token, revoked"

  @disruptive
  Scenario: One cluster leaves the mesh and rejoins without a failed request
    Deleting eks-2's remote secret from eks-1 takes eks-2 out of the mesh as
    istiod in eks-1 sees it: Istio 1.20.2's secret controller stops that
    cluster and its registry is removed with its endpoints
    (secretcontroller.go deleteSecret -> deleteCluster; pilot's
    multicluster.go ClusterDeleted: DeleteRegistry, then a full push). eks-1's
    sleep is then answered by v1 alone, without an error; applying the secret
    again brings v2 back, without restarting anything.

    Given a deployment this scenario may disrupt
    And a traffic probe runs from every cluster's sleep pod to "helloworld.sample:5000/hello"
    When the probe has 5 answers from every cluster
    And the remote secret for the other cluster is deleted from "eks-1"
    And the probe marks "eks-2 left"
    Then the sleep pod's Envoy in "eks-1" holds only the local helloworld pods
    When the probe marks "eks-1 local only"
    And the probe has 10 answers from every cluster since "eks-1 local only"
    And the probe marks "rejoining"
    And the remote secret is applied again in "eks-1" as it was
    And the probe marks "eks-2 rejoined"
    Then only the local helloworld version answered the probe of "eks-1" between "eks-1 local only" and "rejoining", without an error
    And both helloworld versions answer every cluster's probe again within 1 minute of "eks-2 rejoined"
    And no probe request failed
    And istiod ran on without a restart in every cluster

  @twin
  Scenario: A cluster rejoined with a remote secret without its label is caught
    The rejoin done wrong: the secret applied again without the label
    `istio/multiCluster: "true"`. istiod's secret controller watches only
    secrets with that label (secretcontroller.go NewController: the
    informer's LabelSelector), so it never reads the other cluster again.

    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    When the remote secret for the other cluster is deleted from "eks-1"
    And the remote secret is applied again in "eks-1" without its label istio/multiCluster
    Then the remote secret check of "eks-1" fails with a diagnosis naming "lacks the label istio/multiCluster=true"

  @disruptive @root-key
  Scenario: A new intermediate from the same root, istiod restarted cluster by cluster, fails no request
    Each cluster's cacerts gets a new intermediate issued by the root both
    share. Istio 1.20.2 watches the mounted cacerts of a plugged-in CA
    (pilot/pkg/bootstrap/istio_ca.go, initCACertsWatcher and handleEvent): an
    intermediate of the same root is taken up while istiod runs, once the
    kubelet has updated the mounted Secret (about a minute on EKS). istiod is
    then restarted anyway, cluster by cluster, as the runbook does, so that it
    starts from the new files. The root does not change, so each cluster keeps
    verifying the other's workloads whichever intermediate signed them: no
    request fails. Workloads get certificates from the new intermediate when
    istio-agent rotates theirs, or at once when they restart. Issuing it takes
    the root's key: meshspec holds it when it made cacerts, or when given the
    root with --mesh-root-ca; it refuses a root the clusters do not trust.

    Given a deployment this scenario may disrupt
    And a traffic probe runs from every cluster's sleep pod to "helloworld.sample:5000/hello"
    When the probe has 10 answers from every cluster
    And the intermediate CA in every cluster's cacerts is replaced by a new one from the same root
    And the probe marks "cacerts replaced"
    Then istiod in every cluster takes up the new intermediate without a restart
    When istiod is restarted cluster by cluster, each new pod Ready before the next
    And the probe marks "istiod restarted"
    And the probe has 30 answers from every cluster
    Then no probe request failed
    And both helloworld versions answered every cluster's probe
    When the helloworld workloads of "eks-1" are restarted
    And the helloworld workloads of "eks-2" are restarted
    Then the workloads of every cluster present certificates from the intermediate in its cacerts

  @twin
  Scenario: An intermediate from a different root is refused until istiod restarts, then breaks cross-network mTLS
    The operation done wrong: eks-2's new intermediate is issued by a root of
    its own. istiod refuses a new root while it runs ("Multi root is
    disabled", Istio 1.20.2 istio_ca.go handleEvent, ISTIO_MULTIROOT_MESH off
    by default) and takes it at its next start; once eks-2's workloads hold
    certificates from it, neither cluster verifies the other's workloads.

    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    When the intermediate CA in the cacerts of "eks-2" is replaced by one from a different root
    Then istiod in "eks-2" refuses the new root while it runs
    When istiod in "eks-2" is restarted
    And the helloworld workloads of "eks-2" are restarted
    And the sleep pod in "eks-1" sends 20 requests to "helloworld.sample:5000/hello"
    Then only the local version answers and every other answer is a 503 with "CERTIFICATE_VERIFY_FAILED"
    When every check of the runbook runs against it
    Then a check fails with a diagnosis naming "cacerts come from different roots"

  @disruptive @aws
  Scenario: The east-west gateway Service of one cluster is deleted and recreated, and cross-network requests fail only until the new NLB serves
    The AWS load balancer controller deletes the NLB before it lets the
    Service go, and the recreated Service gets a new NLB with a new DNS name
    (ELB picks its suffix at creation). From the deletion until the new NLB's
    targets are healthy and istiod of eks-1 has resolved the new name, eks-1's
    requests that Envoy sends towards v2 may fail: to the old NLB's addresses
    while istiod still holds them, to eks-2's pod IPs while network2 has no
    gateway (Istio 1.20.2 pilot/pkg/xds/endpoints/ep_filters.go,
    EndpointsByNetworkFilter keeps an endpoint as is when its network has no
    gateway). istiod resolves gateway hostnames itself and looks a name up
    again after the answer's TTL, at least 30 s, also when it did not resolve
    (pilot/pkg/model/network.go, resolveAndCache, MinGatewayTTL). The probe's
    chart shows the window; the recovery step attaches how long it took.

    Given a deployment this scenario may disrupt
    And a traffic probe runs from every cluster's sleep pod to "helloworld.sample:5000/hello"
    When the probe has 10 answers from every cluster
    And the probe marks "gateway deleted"
    And the east-west gateway Service of "eks-2" is deleted, and gone once its NLB is
    And it is created again
    And the probe marks "gateway recreated"
    And the new load balancer has every target of its 15443 listener healthy
    And the probe marks "new NLB healthy"
    Then both helloworld versions answer every cluster's probe again within 2 minutes of "new NLB healthy"
    When the probe marks "recovered"
    And the probe has 60 answers from every cluster
    Then probe requests failed only between "gateway deleted" and "recovered"

  @twin
  Scenario: A gateway Service recreated without its network label leaves istiod without a gateway for that network, and is diagnosed
    The operation done wrong: without topology.istio.io/network the new
    Service is no network gateway to istiod, so eks-1's sidecars get eks-2's
    pod IPs, which eks-1 cannot reach.

    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    When the east-west gateway Service of "eks-2" is deleted, and gone once its NLB is
    And it is created again without its topology.istio.io/network label
    And the new load balancer has every target of its 15443 listener healthy
    And every check of the runbook runs against it
    Then a check fails with a diagnosis naming "lacks topology.istio.io/network"

  @twin
  Scenario: A gateway replaced while the other cluster's istiod is down leaves its sidecars on the old NLB's addresses, and is diagnosed
    The operation done at the wrong time: istiod of eks-1 is taken down, then
    eks-2's gateway is replaced. A sidecar that loses its control plane keeps
    the configuration it last received (Envoy docs, configuration/overview/
    mgmt_server, "Management Server Unreachability"), so eks-1's sidecars still
    send towards v2 to the deleted NLB's addresses, and nothing pushes the new
    ones until istiod runs again.

    Given a separate deployment on a fresh twin, provisioned with the plan "stages.yaml"
    Then the sleep pod's Envoy in "eks-1" holds the local helloworld pods on port 5000 and exactly the other cluster's NLB addresses on port 15443, all HEALTHY
    When istiod in "eks-1" is scaled to zero
    And the east-west gateway Service of "eks-2" is deleted, and gone once its NLB is
    And it is created again
    And the new load balancer has every target of its 15443 listener healthy
    And every check of the runbook runs against it
    Then a check fails with a diagnosis naming "still holds"
