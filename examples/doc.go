// Package examples contains the tests of the example Caddyfiles and manifests in this
// directory: that each one adapts with the real piivault parser, and that the sidecar,
// WorkOS and egress policies behave as their header comments describe, against the
// example legacy app.
package examples
