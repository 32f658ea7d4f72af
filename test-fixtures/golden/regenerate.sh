#!/usr/bin/env bash
# Regenerates the golden objects and repositories in this directory with the
# real `ostree` CLI (reference: 2022.7). The outputs are checked in; tests in
# ../src compare Larch's codecs against them. See REGENERATE.md.
#
# Usage: bash test-fixtures/golden/regenerate.sh   (needs ostree, tar, gzip, getfattr)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v ostree >/dev/null || { echo "error: ostree is not installed" >&2; exit 1; }
command -v getfattr >/dev/null || { echo "error: getfattr (package attr) is not installed" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 022

# Fixed inputs so that every run gives the same checksums.
ts='2020-01-01 00:00:00 +0000'
commit_opts=(--timestamp="$ts" -s subj --body=body --add-metadata-string=version=1.0
             --owner-uid=0 --owner-gid=0 -b test)

# The example tree of spec/gvariant.md section 5.
tree="$work/tree"
mkdir -p "$tree/sub"
printf 'hello\n' > "$tree/hello.txt"
ln -s hello.txt "$tree/link"
: > "$tree/sub/empty"
chmod 0755 "$tree" "$tree/sub"
chmod 0644 "$tree/hello.txt" "$tree/sub/empty"

rm -rf "$here/objects" "$here/bare-user" "$here/repos"
mkdir -p "$here/objects" "$here/bare-user" "$here/repos"

# Keeps only what a tarball of a fresh repo needs to be deterministic.
pack_repo() { # $1 repo dir, $2 output .tar.gz
  tar --sort=name --mtime='2020-01-01 00:00Z' --owner=0 --group=0 --numeric-owner \
      --xattrs --xattrs-include='user.*' -C "$1" -cf - . | gzip -n -9 > "$2"
}

# Every loose object of a repo, copied as objects/<checksum>.<ext>.
copy_objects() { # $1 repo, $2 destination dir
  local f name
  while IFS= read -r f; do
    name="$(basename "$(dirname "$f")")$(basename "$f")"
    cp "$f" "$2/$name"
    chmod 0644 "$2/$name"
  done < <(find "$1/objects" -type f | sort)
}

# 1. archive and bare-user commits of the example tree.
for mode in archive bare-user; do
  repo="$work/$mode"
  ostree init --repo="$repo" --mode="$mode"
  commit="$(ostree commit --repo="$repo" "${commit_opts[@]}" --tree=dir="$tree")"
  echo "$commit" > "$here/example-commit.txt"
  ostree fsck --repo="$repo" -q >/dev/null
  if [ "$mode" = archive ]; then
    copy_objects "$repo" "$here/objects"
    ostree summary --repo="$repo" -u
    cp "$repo/summary" "$here/summary"
    ostree summary --repo="$repo" --view > "$here/summary-view.txt"
    ostree show --repo="$repo" "$commit" > "$here/show.txt"
    ostree ls --repo="$repo" -R -C "$commit" > "$here/ls-R.txt"
  else
    # bare-user objects keep their metadata in the user.ostreemeta xattr,
    # which a plain copy would lose: keep the content and the xattr value.
    while IFS= read -r f; do
      name="$(basename "$(dirname "$f")")$(basename "$f")"
      cp "$f" "$here/bare-user/$name"
      chmod 0644 "$here/bare-user/$name"
      getfattr --absolute-names --only-values -n user.ostreemeta "$f" > "$here/bare-user/$name.ostreemeta"
    done < <(find "$repo/objects" -type f -name '*.file' | sort)
  fi
  pack_repo "$repo" "$here/repos/$mode.tar.gz"
done

# 2. detached metadata: a dummy signature over the commit ({"ostree.sign.dummy": <[b"abc"]>}).
OSTREE_DUMMY_SIGN_ENABLED=1 ostree sign --repo="$work/archive" --sign-type=dummy "$commit" abc
cp "$work/archive/objects/${commit:0:2}/${commit:2}.commitmeta" "$here/objects/$commit.commitmeta"

# 3. a tombstone: two commits on one branch, the older one deleted with prune.
t="$work/tomb"
ostree init --repo="$t" --mode=archive
first="$(ostree commit --repo="$t" --timestamp="$ts" -s first --owner-uid=0 --owner-gid=0 -b main --tree=dir="$tree/sub")"
ostree commit --repo="$t" --timestamp='2020-01-02 00:00:00 +0000' -s second --owner-uid=0 --owner-gid=0 -b main --tree=dir="$tree" >/dev/null
ostree prune --repo="$t" --delete-commit="$first" >/dev/null
cp "$t/objects/${first:0:2}/${first:2}.tombstone-commit" "$here/objects/$first.tombstone-commit"
echo "$first" > "$here/tombstone-commit.txt"

du -sh "$here" | cut -f1 | sed 's/^/golden size: /'
