package pulid

import (
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"
)

// MixinWithPrefix returns the id mixin of a type whose ids start with prefix.
func MixinWithPrefix(prefix string) Mixin { return Mixin{prefix: prefix} }

// Mixin declares the id field and records the prefix for the IDToType template.
type Mixin struct {
	mixin.Schema
	prefix string
}

// Fields implements ent.Mixin.
func (m Mixin) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").
			GoType(ID("")).
			MaxLen(Len).
			NotEmpty().
			Immutable().
			DefaultFunc(func() ID { return New(m.prefix) }),
	}
}

// Annotation carries the prefix into code generation.
type Annotation struct{ Prefix string }

// Name implements schema.Annotation.
func (Annotation) Name() string { return "PULID" }

// Annotations implements ent.Mixin.
func (m Mixin) Annotations() []schema.Annotation {
	return []schema.Annotation{Annotation{Prefix: m.prefix}}
}
