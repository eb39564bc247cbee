# A root module shaped like the seed's, made of terraform_data resources only
# (Terraform's built-in provider: nothing to download), for the test that
# drives the real terraform binary through meshspec's staged applies.

resource "terraform_data" "vpc_1" {
  input = "10.1.0.0/16"
}

resource "terraform_data" "vpc_2" {
  input = "10.2.0.0/16"
}

module "addons" {
  source = "./modules/addons"
  vpcs   = [terraform_data.vpc_1.id, terraform_data.vpc_2.id]
}

resource "terraform_data" "samples" {
  input = module.addons.releases
}
