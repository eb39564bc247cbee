#!/usr/bin/env bash
# What an operator types against a cluster of the mesh, with what a real cluster
# answers to it. Run by tests/integration/operator_script.rs against
# `meshspec twin up`, with the env file's variables (KUBECONFIG, CTX_CLUSTER1,
# AWS_*) and MESHSPEC (the binary) set. Every command is echoed; the first
# answer that differs from a real cluster's ends the script with exit 1.
set -euo pipefail

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
k() { kubectl --context "$CTX_CLUSTER1" "$@"; }
step() { printf '\n$ %s\n' "$*" >&2; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
# expect DESCRIPTION ACTUAL EXPECTED
expect() { [ "$2" == "$3" ] || fail "$1: expected [$3], got [$2]"; printf '%s\n' "$2" >&2; }
# expect_has DESCRIPTION ACTUAL NEEDLE
expect_has() { [[ "$2" == *"$3"* ]] || fail "$1: [$3] not in [$2]"; printf '%s\n' "$2" >&2; }

# --- create, with the subcommands a runbook uses (kubectl sends these as protobuf)
step kubectl create namespace ops
expect "create namespace" "$(k create namespace ops)" "namespace/ops created"
printf 's3cr3t' >"$work/pass"
step kubectl create secret generic db --from-literal --from-file
expect "create secret" "$(k create secret generic db -n ops --from-literal=user=admin --from-file=pass="$work/pass")" \
  "secret/db created"
expect "secret data" "$(k get secret db -n ops -o jsonpath='{.data.pass}' | base64 -d)" "s3cr3t"
step kubectl create configmap cfg --from-literal
expect "create configmap" "$(k create configmap cfg -n ops --from-literal=mode=strict)" "configmap/cfg created"
step kubectl create serviceaccount bot
expect "create serviceaccount" "$(k create serviceaccount bot -n ops)" "serviceaccount/bot created"
step kubectl create deployment web --image --replicas 2
expect "create deployment" "$(k create deployment web -n ops --image=registry.k8s.io/pause:3.9 --replicas=2)" \
  "deployment.apps/web created"

# --- label, annotate
step kubectl label namespace ops team=mesh
expect "label" "$(k label namespace ops team=mesh)" "namespace/ops labeled"
step kubectl annotate deployment web owner=platform
expect "annotate" "$(k annotate deployment web -n ops owner=platform)" "deployment.apps/web annotated"
expect "label selector" "$(k get namespaces -l team=mesh -o name)" "namespace/ops"

# --- rollout, wait
step kubectl rollout status deployment/web
expect_has "rollout status" "$(k rollout status deployment/web -n ops --timeout=60s)" \
  'deployment "web" successfully rolled out'
step kubectl wait --for=condition=Available deployment/web
expect "wait" "$(k wait --for=condition=Available deployment/web -n ops --timeout=60s)" \
  "deployment.apps/web condition met"
step kubectl scale deployment web --replicas 1
expect "scale" "$(k scale deployment web -n ops --replicas=1)" "deployment.apps/web scaled"
k rollout status deployment/web -n ops --timeout=60s >/dev/null

# --- get, in every output a runbook reads
step kubectl get deployment web -o jsonpath / json / yaml
expect "jsonpath" "$(k get deployment web -n ops -o jsonpath='{.spec.replicas}/{.metadata.annotations.owner}')" "1/platform"
expect "json" "$(k get configmap cfg -n ops -o json | jq -r .data.mode)" "strict"
expect_has "yaml" "$(k get deployment web -n ops -o yaml)" "kind: Deployment"
step kubectl get pods -o wide
wide=$(k get pods -n ops -o wide)
expect_has "wide header" "$(head -1 <<<"$wide" | tr -s ' ')" "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
expect_has "wide row" "$(tail -1 <<<"$wide")" "Running"

# --- who may do what
reader=system:serviceaccount:istio-system:istio-reader-service-account
step kubectl auth can-i list pods --as "$reader" -A
expect "reader lists pods" "$(k auth can-i list pods -A --as="$reader")" "yes"
step kubectl auth can-i get secrets -n ops --as system:serviceaccount:ops:bot
expect "bot reads secrets" "$(k auth can-i get secrets -n ops --as=system:serviceaccount:ops:bot || true)" "no"
step kubectl auth whoami
expect_has "whoami" "$(k auth whoami -o jsonpath='{.status.userInfo.groups}')" "system:masters"

# --- logs, events
step kubectl logs deploy/istiod -n istio-system --tail 20
expect_has "istiod log" "$(k logs deploy/istiod -n istio-system --tail=200)" "cluster=cluster2"
step kubectl get events -n ops
events=$(k get events -n ops)
expect_has "scheduled" "$events" "Scheduled"
expect_has "scaled" "$events" "ScalingReplicaSet"

# --- delete, and wait for it to be gone
step kubectl delete namespace ops --wait
expect "delete" "$(k delete namespace ops --wait --timeout=60s)" 'namespace "ops" deleted'
step kubectl get namespace ops
gone=$(k get namespace ops 2>&1 || true)
expect "gone" "$gone" 'Error from server (NotFound): namespaces "ops" not found'

# --- the aws CLI, as the runbook's checks use it
step aws eks describe-cluster --name eks-1
expect "eks status" "$(aws eks describe-cluster --name eks-1 --query cluster.status --output text)" "ACTIVE"
host=$(k get svc istio-eastwestgateway -n istio-ingress -o jsonpath='{.status.loadBalancer.ingress[0].hostname}')
step aws elbv2 describe-load-balancers
lb=$(aws elbv2 describe-load-balancers --query "LoadBalancers[?DNSName=='$host'] | [0].[Type,Scheme,State.Code]" --output text)
expect "nlb" "$(tr -s '\t' ' ' <<<"$lb")" "network internet-facing active"

# --- proxy-config: live, then from a saved dump, without a cluster
sleep_pod=$(k get pod -n sample -l app=sleep -o jsonpath='{.items[0].metadata.name}')
hw='outbound|5000||helloworld.sample.svc.cluster.local'
step meshspec proxy-config endpoint "$sleep_pod.sample" --cluster "$hw"
live=$("$MESHSPEC" proxy-config endpoint "$sleep_pod.sample" --context "$CTX_CLUSTER1" --cluster "$hw")
expect_has "live endpoints" "$live" ":15443"
step kubectl exec "$sleep_pod" -c istio-proxy -- pilot-agent request GET 'clusters?format=json'
k exec -n sample "$sleep_pod" -c istio-proxy -- pilot-agent request GET 'clusters?format=json' >"$work/clusters.json"
step meshspec proxy-config endpoint --file clusters.json --cluster "$hw"
expect "offline = live" "$("$MESHSPEC" proxy-config endpoint --file "$work/clusters.json" --cluster "$hw")" "$live"

printf '\noperator script: every answer as a real cluster gives it\n' >&2
