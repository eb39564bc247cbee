variable "vpcs" {
  type = list(string)
}

resource "terraform_data" "this" {
  for_each = toset(["istiod"])
  input    = { release = each.key, vpcs = var.vpcs }
}

output "releases" {
  value = [for r in terraform_data.this : r.id]
}
