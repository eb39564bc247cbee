@provisioning
Feature: Provisioning the multi-primary, multi-network mesh
  Two EKS clusters in one region, each in its own VPC and on its own Istio
  network, form one mesh. Each cluster runs its own istiod (multi-primary) and
  reads the other cluster's API server through a remote secret. Traffic between
  the networks enters through east-west gateways exposed by internet-facing
  NLBs, and both clusters trust one root CA, plugged in as the secret `cacerts`
  before istiod starts.

  The deployment is built in three stages, like the runbook's three
  `terraform apply` runs: (1) VPCs, EKS clusters and `cacerts`; (2) istiod
  and the AWS load balancer controllers; (3) everything else: gateways, reader
  tokens, the sample namespace and the multicluster chart.

  Background:
    Given the mesh topology:
      | cluster | istio cluster | network  | vpc       | vpc cidr    | helloworld |
      | eks-1   | cluster1      | network1 | eks-1-vpc | 10.1.0.0/16 | v1         |
      | eks-2   | cluster2      | network2 | eks-2-vpc | 10.2.0.0/16 | v2         |
    And the mesh ID is "mesh1" in region "us-west-2"
    And the deployment is provisioned in stages on the target

  @provisions
  Scenario: The stages ran in the runbook's order
    Then the provisioning stages ran in this order:
      | stage | name           |
      | 1     | infrastructure |
      | 2     | control-plane  |
      | 3     | workloads      |

  @aws
  Scenario: Each cluster has its own VPC with three private and three public subnets
    The VPC module cuts a /20 private subnet and a /24 public subnet per
    availability zone; the AWS load balancer controller picks subnets by tag.
    Then each cluster's VPC has its topology CIDR and the seed's subnets
    And each VPC has 3 private subnets tagged "kubernetes.io/role/internal-elb=1"
    And each VPC has 3 public subnets tagged "kubernetes.io/role/elb=1"

  @aws
  Scenario: Both EKS clusters are active and reachable
    Then both EKS clusters are ACTIVE with Kubernetes "1.28"
    And each cluster's Kubernetes API answers with credentials built from DescribeCluster

  Scenario: istio-system carries each cluster's network
    istiod learns the network of a cluster's endpoints from this label.
    Then in each cluster the namespace "istio-system" has label "topology.istio.io/network" set to the cluster's network

  Scenario: One root of trust, plugged in as cacerts
    Cross-network mTLS works only if both clusters' workload certificates
    chain up to the same root.
    Then each cluster has the secret "cacerts" in "istio-system" with keys ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem
    And each intermediate CA is signed by the root and matches its private key
    And both clusters share one root certificate

  @aws
  Scenario: The AWS load balancer controller runs in each cluster
    It turns the gateway Services into network load balancers.
    Then in each cluster the deployment "aws-load-balancer-controller" in "kube-system" is available

  Scenario: istiod and the gateways are deployed
    Then in each cluster the deployment "istiod" in "istio-system" is available
    And in each cluster istiod is configured with the mesh ID, its Istio cluster name and its network
    And in each cluster the deployment "istio-ingressgateway" in "istio-ingress" is available
    And in each cluster the deployment "istio-eastwestgateway" in "istio-ingress" is available
    And in each cluster the east-west gateway is labelled with its network and asks for its own network view

  Scenario: The sample apps run with sidecar injection on
    Then in each cluster the namespace "sample" has label "istio-injection" set to "enabled"
    And in each cluster the helloworld deployment of the cluster's version is available in "sample"
    And in each cluster the deployment "sleep" in "sample" is available
    And in each cluster the Gateway "cross-network-gateway" in "istio-ingress" passes TLS through on port 15443 for hosts "*.local"
