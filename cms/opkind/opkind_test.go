package opkind

import "testing"

func TestDeclared(t *testing.T) {
	if len(All()) != len(declared) {
		t.Fatalf("All() has %d kinds, %d declared", len(All()), len(declared))
	}
	for _, name := range []string{Activation, Reprint, Revocation, History} {
		if !Online(name) {
			t.Errorf("%s is not online", name)
		}
	}
	for _, name := range []string{Consent, Reader, PINChange, WrongData, "nonsense"} {
		if Online(name) {
			t.Errorf("%s is online", name)
		}
	}
	if k, ok := Lookup(Consent); !ok || !k.Correctable || !k.Cancellable || !k.Flow {
		t.Errorf("Lookup(consent) = %+v, %v", k, ok)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a second declaration of consent was accepted")
		}
	}()
	Register(Kind{Name: Consent})
}
