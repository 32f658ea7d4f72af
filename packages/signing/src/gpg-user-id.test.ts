// User ids as gpgme splits them (what `Good signature from "NAME <EMAIL>"` prints), and the Web
// Key Directory URLs `ostree remote gpg-list-keys` prints, checked against the values in OSTree's
// own test suite (tests/test-remote-gpg-list-keys.sh, keys of tests/gpghome).
import { describe, expect, it } from 'vitest';
import { mailboxOfUserId, parseUserId, wkdUrls, zbase32 } from './index.js';

describe('parseUserId', () => {
  it('splits Name (Comment) <email> as gpgme does', () => {
    expect(parseUserId('Ostree Tester <test@test.com>')).toEqual({ name: 'Ostree Tester', comment: '', email: 'test@test.com' });
    expect(parseUserId('Name (work) <n@example.com>')).toEqual({ name: 'Name', comment: 'work', email: 'n@example.com' });
    expect(parseUserId('  Padded Name  ')).toEqual({ name: 'Padded Name', comment: '', email: '' });
  });

  it('gives an empty email for a user id without one, so OSTree prints "Test Key 1 <>"', () => {
    expect(parseUserId('Test Key 1')).toEqual({ name: 'Test Key 1', comment: '', email: '' });
    expect(parseUserId('')).toEqual({ name: '', comment: '', email: '' });
    expect(parseUserId('<only@example.com>')).toEqual({ name: '', comment: '', email: 'only@example.com' });
  });
});

describe('mailboxOfUserId', () => {
  it('takes the address inside <…>, or a bare address, lower-cased', () => {
    expect(mailboxOfUserId('Ostree Tester <Test@Test.com>')).toBe('test@test.com');
    expect(mailboxOfUserId('plain@example.org')).toBe('plain@example.org');
  });

  it('finds none in names, empty brackets and malformed addresses', () => {
    for (const uid of ['Test Key 1', 'Name <>', 'a@b@c', '@example.com', 'x@example.com.', 'x@exa..mple', 'x <y@ex ample.com>', 'open <x@example.com']) {
      expect(mailboxOfUserId(uid), uid).toBeNull();
    }
  });
});

describe('wkdUrls', () => {
  it('matches the URLs OSTree prints for its test keys', () => {
    expect(wkdUrls('test@test.com')).toEqual({
      advanced: 'https://openpgpkey.test.com/.well-known/openpgpkey/test.com/hu/iffe93qcsgp4c8ncbb378rxjo6cn9q6u?l=test',
      direct: 'https://test.com/.well-known/openpgpkey/hu/iffe93qcsgp4c8ncbb378rxjo6cn9q6u?l=test',
    });
    expect(wkdUrls('test2@test.com')?.direct).toBe('https://test.com/.well-known/openpgpkey/hu/nnxwsxno46ap6hw7fgphp68j76egpfa9?l=test2');
    expect(wkdUrls('test3@test.com')?.direct).toBe('https://test.com/.well-known/openpgpkey/hu/8494gyqhmrcs6gn38tn6kgjexet117cj?l=test3');
  });

  it('hashes the lower-cased local part but keeps its case (escaped) in l=', () => {
    const u = wkdUrls('Joe.Doe+x@Example.ORG')!;
    expect(u.advanced).toBe(`https://openpgpkey.Example.ORG/.well-known/openpgpkey/example.org/hu/${wkdUrls('joe.doe+x@example.org')!.direct.split('/hu/')[1].split('?')[0]}?l=Joe.Doe%2Bx`);
    expect(wkdUrls('no-at-sign')).toBeNull();
  });
});

describe('zbase32', () => {
  it('encodes with the z-base-32 alphabet, 5 bits per character', () => {
    expect(zbase32(new Uint8Array([]))).toBe('');
    expect(zbase32(new Uint8Array([0]))).toBe('yy');
    expect(zbase32(new Uint8Array([0xff]))).toBe('9h');
    expect(zbase32(new Uint8Array(20).fill(0))).toBe('y'.repeat(32));
  });
});
