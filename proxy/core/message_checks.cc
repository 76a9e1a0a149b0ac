#include "message_checks.hh"

#include <sofia-sip/msg_mclass.h>

#include <algorithm>
#include <vector>

namespace parkway::proxy {

namespace {

bool singleKind(const msg_header_t *h) {
    return h->sh_class && h->sh_class->hc_kind == msg_kind_single;
}

std::string nameOf(const msg_header_t *h) {
    return h->sh_class->hc_name ? h->sh_class->hc_name : "?";
}

} // namespace

// sofia-sip's parser puts the second and later copies of a single-instance header into the message's list of
// erroneous headers (sip_error), as objects of their own class; a module adding a header may also leave a
// copy chained to the first (sh_next). Serialising either trips sofia's assertion.
std::string stripDuplicateSingleHeaders(msg_t *msg) {
    msg_pub_t *pub = msg ? msg_object(msg) : nullptr;
    if (!pub)
        return {};
    std::string first;
    msg_hclass_t const *errorClass = msg_mclass(msg)->mc_error->hr_class;
    for (msg_header_t **pp = reinterpret_cast<msg_header_t **>(&pub->msg_error); *pp;) {
        msg_header_t *e = *pp;
        if (e->sh_class == errorClass || !singleKind(e)) {
            pp = &e->sh_next;
            continue;
        }
        if (first.empty())
            first = nameOf(e);
        *pp = e->sh_next; // out of the error list, then out of the fragment chain
        e->sh_next = nullptr;
        msg_header_remove(msg, pub, e);
    }
    msg_header_t **head = msg_chain_head(msg);
    std::vector<msg_header_t **> lists; // lists with extra copies (found first: the chain changes below)
    for (msg_header_t *h = head ? *head : nullptr; h; h = h->sh_succ) {
        if (!singleKind(h))
            continue;
        msg_header_t **slot = msg_hclass_offset(msg_mclass(msg), pub, h->sh_class);
        if (slot && *slot && (*slot)->sh_next && std::find(lists.begin(), lists.end(), slot) == lists.end())
            lists.push_back(slot);
    }
    for (msg_header_t **slot : lists) {
        if (first.empty())
            first = nameOf(*slot);
        while ((*slot)->sh_next) {
            msg_header_t *extra = (*slot)->sh_next;
            // msg_header_remove() unlinks it from the list and the chain; if it could not, cut the list here
            if (msg_header_remove(msg, pub, extra) < 0 || (*slot)->sh_next == extra)
                (*slot)->sh_next = nullptr;
        }
    }
    return first;
}

bool bodyTruncated(msg_t *msg) {
    if (!msg)
        return false;
    if (msg_get_flags(msg, MSG_FLG_TRUNC))
        return true;
    // A datagram that ends right after the header section is taken as complete with no body at all.
    const sip_t *sip = sip_object(msg);
    size_t declared = sip && sip->sip_content_length ? sip->sip_content_length->l_length : 0;
    size_t got = sip && sip->sip_payload ? sip->sip_payload->pl_len : 0;
    return declared > got;
}

bool routableScheme(const url_t *url) {
    if (!url)
        return false;
    return url->url_type == url_sip || url->url_type == url_sips || url->url_type == url_tel;
}

} // namespace parkway::proxy
