package workos

import (
	"context"

	"github.com/piivault/piivault/vault"
)

// DescribeByName returns the metadata of the object named name. WorkOS has no metadata
// call by name, so it reads the object and drops its value.
//
// NOTE: WorkOS decrypts the value for this call. piivault names objects after their
// key context, so the lookup stays within the tenant whose request asked for it.
func (s *Store) DescribeByName(ctx context.Context, name string) (vault.Metadata, error) {
	obj, err := s.ReadByName(ctx, name)
	if err != nil {
		return vault.Metadata{}, err
	}
	return obj.Metadata, nil
}

var _ vault.NameDescriber = (*Store)(nil)
