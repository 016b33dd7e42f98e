"""``iam-policy``: what a Plan needs (needs.py), the least-privilege statements for it
(statements.py), rendered as JSON or Terraform (terraform.py)."""
