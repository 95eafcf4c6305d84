#!/usr/bin/perl
# Checks sessiongate's signed assertion from a CGI environment (core Perl
# only): exits 0 when the request carries a valid, fresh X-Session-Signature
# over its method, REQUEST_URI and session headers, 1 otherwise (the reason
# on stderr).
#   SESSIONGATE_SIGN_KEYS    the keys, separated by spaces (two during a rotation)
#   SESSIONGATE_SIGN_WINDOW  how old (or early) t may be, in seconds; 60 unless set
# In a Perl CGI script:
#   require '/usr/local/lib/sessiongate/verify.pl';
#   if (defined(my $why = sessiongate_verify(\%ENV))) { print "Status: 403\r\n\r\n"; exit }
# The canonical string is documented in docs/signed-assertion.md.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256 sha256_hex);
use MIME::Base64 qw(encode_base64);

my $P = 'HTTP_X_SESSION_';    # another headers.prefix: change it here

# undef when the signature is valid and fresh, else why not.
sub sessiongate_verify {
    my ($env) = @_;
    my $v = sub { $env->{ $_[0] } // '' };
    my ($kid, $t, $sig) = $v->("${P}SIGNATURE")
      =~ /\Av1;kid=([0-9a-f]{8});t=([1-9][0-9]{0,11});sig=([A-Za-z0-9_-]{43})\z/
      or return 'no v1 signature';
    my $window = $env->{SESSIONGATE_SIGN_WINDOW} // 60;
    return "stale: t=$t" if abs(time - $t) > $window;
    my ($key) = grep { substr(sha256_hex("sessiongate-kid$_"), 0, 8) eq $kid }
      split ' ', $v->('SESSIONGATE_SIGN_KEYS');
    return "unknown key id $kid" unless defined $key;
    my $canonical = join "\n", 'v1', $v->('REQUEST_METHOD'), $v->('REQUEST_URI'), $t,
      $v->("${P}USER"), $v->("${P}GROUPS"), sha256_hex($v->("${P}DATA"));
    (my $want = encode_base64(hmac_sha256($canonical, $key), '')) =~ tr{+/=}{-_}d;
    my $diff = 0;    # in constant time: every character is compared
    $diff |= ord(substr $want, $_, 1) ^ ord(substr $sig, $_, 1) for 0 .. 42;
    return $diff ? 'bad signature' : undef;
}

unless (caller) {
    my $why = sessiongate_verify(\%ENV);
    print STDERR "verify.pl: $why\n" if defined $why;
    exit(defined $why ? 1 : 0);
}
1;
