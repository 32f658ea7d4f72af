/**
 * Proxy selection (fetcher-proxy.ts) in the cases libcurl documents: which variable serves which
 * scheme, the remote's key before the environment, and `no_proxy` over both.
 */
import { describe, expect, it } from 'vitest';
import { LarchError } from '@larch/core-store';
import { noProxyMatches, proxyForUrl } from '../src/fetcher-proxy.js';

const http = new URL('http://repo.example.com:8080/ostree/');
const https = new URL('https://repo.example.com/ostree/');

describe('proxyForUrl', () => {
  it('reads http_proxy for http:// only, never HTTP_PROXY', () => {
    expect(proxyForUrl(http, undefined, { http_proxy: 'http://p:3128' })).toBe('http://p:3128/');
    expect(proxyForUrl(http, undefined, { HTTP_PROXY: 'http://p:3128' })).toBeNull();
    expect(proxyForUrl(https, undefined, { http_proxy: 'http://p:3128' })).toBeNull();
  });
  it('reads https_proxy, then HTTPS_PROXY, then all_proxy for https://', () => {
    expect(proxyForUrl(https, undefined, { https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:1' })).toBe('http://a:1/');
    expect(proxyForUrl(https, undefined, { HTTPS_PROXY: 'http://b:1', all_proxy: 'http://c:1' })).toBe('http://b:1/');
    expect(proxyForUrl(https, undefined, { ALL_PROXY: 'http://c:1' })).toBe('http://c:1/');
  });
  it("takes the remote's key before the environment, and a bare host:port as http", () => {
    expect(proxyForUrl(http, 'proxy.local:8080', { http_proxy: 'http://p:3128' })).toBe('http://proxy.local:8080/');
    expect(proxyForUrl(http, '', { http_proxy: 'http://p:3128' })).toBe('http://p:3128/');
  });
  it('lets no_proxy override both', () => {
    expect(proxyForUrl(http, 'http://p:1', { no_proxy: '.example.com' })).toBeNull();
    expect(proxyForUrl(http, undefined, { NO_PROXY: '*', http_proxy: 'http://p:1' })).toBeNull();
  });
  it('refuses a proxy scheme it cannot speak, without printing the password', () => {
    let err: unknown;
    try {
      proxyForUrl(http, 'socks4://user:secret@p:1080', {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LarchError);
    expect((err as LarchError).code).toBe('BAD_CONFIG');
    expect((err as Error).message).not.toContain('secret');
  });
});

describe('noProxyMatches', () => {
  it('matches names and their subdomains, case-insensitively', () => {
    expect(noProxyMatches('repo.example.com', 'example.com')).toBe(true);
    expect(noProxyMatches('repo.example.com', '.EXAMPLE.com')).toBe(true);
    expect(noProxyMatches('badexample.com', 'example.com')).toBe(false);
    expect(noProxyMatches('example.com.', 'other.org, example.com')).toBe(true);
  });
  it('matches IP addresses exactly or by CIDR, never by name suffix', () => {
    expect(noProxyMatches('127.0.0.1', '127.0.0.1')).toBe(true);
    expect(noProxyMatches('10.1.2.3', '10.0.0.0/8')).toBe(true);
    expect(noProxyMatches('11.1.2.3', '10.0.0.0/8')).toBe(false);
    expect(noProxyMatches('[::1]', '::1')).toBe(true);
    expect(noProxyMatches('1.0.0.127', '0.0.127')).toBe(false);
  });
  it('treats * as every host only on its own', () => {
    expect(noProxyMatches('a.b', '*')).toBe(true);
    expect(noProxyMatches('a.b', '*,c.d')).toBe(false);
  });
});
