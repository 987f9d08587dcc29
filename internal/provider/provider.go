package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

type eventaccessProvider struct{ version string }

// New returns a provider factory.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &eventaccessProvider{version: version} }
}

func (p *eventaccessProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "eventaccess"
	resp.Version = p.version
}
func (p *eventaccessProvider) Schema(context.Context, provider.SchemaRequest, *provider.SchemaResponse) {
}
func (p *eventaccessProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {
}
func (p *eventaccessProvider) Resources(context.Context) []func() resource.Resource { return nil }
func (p *eventaccessProvider) DataSources(context.Context) []func() datasource.DataSource {
	return nil
}
