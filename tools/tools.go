// Package tools holds the go:generate directives that build the provider docs.
package tools

// Format Terraform code for use in documentation.
//go:generate terraform fmt -recursive ../examples/

// Generate documentation from the provider schema, templates/ and examples/.
//go:generate go tool tfplugindocs generate --provider-dir .. --provider-name eventaccess
