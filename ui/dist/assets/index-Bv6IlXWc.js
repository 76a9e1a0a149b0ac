var ne,S,Ge,H,we,Oe,We,ie,B,G,qe,me,_e,de,Q={},Y=[],ot=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,oe=Array.isArray;function U(e,t){for(var n in t)e[n]=t[n];return e}function he(e){e&&e.parentNode&&e.parentNode.removeChild(e)}function je(e,t,n){var o,r,a,s={};for(a in t)a=="key"?o=t[a]:a=="ref"?r=t[a]:s[a]=t[a];if(arguments.length>2&&(s.children=arguments.length>3?ne.call(arguments,2):n),typeof e=="function"&&e.defaultProps!=null)for(a in e.defaultProps)s[a]===void 0&&(s[a]=e.defaultProps[a]);return K(e,s,o,r,null)}function K(e,t,n,o,r){var a={type:e,props:t,key:n,ref:o,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:r??++Ge,__i:-1,__u:0};return r==null&&S.vnode!=null&&S.vnode(a),a}function ae(e){return e.children}function z(e,t){this.props=e,this.context=t}function R(e,t){if(t==null)return e.__?R(e.__,e.__i+1):null;for(var n;t<e.__k.length;t++)if((n=e.__k[t])!=null&&n.__e!=null)return n.__e;return typeof e.type=="function"?R(e):null}function at(e){if(e.__P&&e.__d){var t=e.__v,n=t.__e,o=[],r=[],a=U({},t);a.__v=t.__v+1,S.vnode&&S.vnode(a),be(e.__P,a,t,e.__n,e.__P.namespaceURI,32&t.__u?[n]:null,o,n??R(t),!!(32&t.__u),r),a.__v=t.__v,a.__.__k[a.__i]=a,Je(o,a,r),t.__e=t.__=null,a.__e!=n&&Ve(a)}}function Ve(e){if((e=e.__)!=null&&e.__c!=null)return e.__e=e.__c.base=null,e.__k.some(function(t){if(t!=null&&t.__e!=null)return e.__e=e.__c.base=t.__e}),Ve(e)}function xe(e){(!e.__d&&(e.__d=!0)&&H.push(e)&&!X.__r++||we!=S.debounceRendering)&&((we=S.debounceRendering)||Oe)(X)}function X(){try{for(var e,t=1;H.length;)H.length>t&&H.sort(We),e=H.shift(),t=H.length,at(e)}finally{H.length=X.__r=0}}function Be(e,t,n,o,r,a,s,u,i,c,_){var p,l,d,h,v,m,g=o&&o.__k||Y,f=t.length;for(i=rt(n,t,g,i,f),p=0;p<f;p++)(d=n.__k[p])!=null&&(l=d.__i!=-1&&g[d.__i]||Q,d.__i=p,m=be(e,d,l,r,a,s,u,i,c,_),h=d.__e,d.ref&&l.ref!=d.ref&&(l.ref&&ve(l.ref,null,d),_.push(d.ref,d.__c||h,d)),v==null&&h!=null&&(v=h),4&d.__u?(i=Ke(d,i,e),l.__e&&(l.__e=null)):typeof d.type=="function"&&m!==void 0?i=m:h&&(i=h.nextSibling),d.__u&=-7);return n.__e=v,i}function rt(e,t,n,o,r){var a,s,u,i,c,_=n.length,p=_,l=0;for(e.__k=new Array(r),a=0;a<r;a++)(s=t[a])!=null&&typeof s!="boolean"&&typeof s!="function"?(typeof s=="string"||typeof s=="number"||typeof s=="bigint"||s.constructor==String?s=e.__k[a]=K(null,s,null,null,null):oe(s)?s=e.__k[a]=K(ae,{children:s},null,null,null):s.constructor===void 0&&s.__b>0?s=e.__k[a]=K(s.type,s.props,s.key,s.ref?s.ref:null,s.__v):e.__k[a]=s,i=a+l,s.__=e,s.__b=e.__b+1,u=null,(c=s.__i=lt(s,n,i,p))!=-1&&(p--,(u=n[c])&&(u.__u|=2)),u==null||u.__v==null?(c==-1&&(r>_?l--:r<_&&l++),typeof s.type!="function"&&(s.__u|=4)):c!=i&&(c==i-1?l--:c==i+1?l++:(c>i?l--:l++,s.__u|=4))):e.__k[a]=null;if(p)for(a=0;a<_;a++)(u=n[a])!=null&&(2&u.__u)==0&&(u.__e==o&&(o=R(u)),Ye(u,u));return o}function Ke(e,t,n){var o,r;if(typeof e.type=="function"){for(o=e.__k,r=0;o&&r<o.length;r++)o[r]&&(o[r].__=e,t=Ke(o[r],t,n));return t}e.__e!=t&&(t&&e.type&&!t.parentNode&&(t=R(e)),t=n.insertBefore(e.__e,t||null));do t=t&&t.nextSibling;while(t!=null&&t.nodeType==8);return t}function lt(e,t,n,o){var r,a,s,u=e.key,i=e.type,c=t[n],_=c!=null&&(2&c.__u)==0;if(c===null&&u==null||_&&u==c.key&&i==c.type)return n;if(o>(_?1:0)){for(r=n-1,a=n+1;r>=0||a<t.length;)if((c=t[s=r>=0?r--:a++])!=null&&(2&c.__u)==0&&u==c.key&&i==c.type)return s}return-1}function Se(e,t,n){t[0]=="-"?e.setProperty(t,n??""):e[t]=n==null?"":typeof n!="number"||ot.test(t)?n:n+"px"}function V(e,t,n,o,r){var a,s;e:if(t=="style")if(typeof n=="string")e.style.cssText=n;else{if(typeof o=="string"&&(e.style.cssText=o=""),o)for(t in o)n&&t in n||Se(e.style,t,"");if(n)for(t in n)o&&n[t]==o[t]||Se(e.style,t,n[t])}else if(t[0]=="o"&&t[1]=="n")a=t!=(t=t.replace(qe,"$1")),s=t.toLowerCase(),t=s in e||t=="onFocusOut"||t=="onFocusIn"?s.slice(2):t.slice(2),e.l||(e.l={}),e.l[t+a]=n,n?o?n[G]=o[G]:(n[G]=me,e.addEventListener(t,a?de:_e,a)):e.removeEventListener(t,a?de:_e,a);else{if(r=="http://www.w3.org/2000/svg")t=t.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(t!="width"&&t!="height"&&t!="href"&&t!="list"&&t!="form"&&t!="tabIndex"&&t!="download"&&t!="rowSpan"&&t!="colSpan"&&t!="role"&&t!="popover"&&t in e)try{e[t]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&t[4]!="-"?e.removeAttribute(t):e.setAttribute(t,t=="popover"&&n==1?"":n))}}function De(e){return function(t){if(this.l){var n=this.l[t.type+e];if(t[B]==null)t[B]=me++;else if(t[B]<n[G])return;return n(S.event?S.event(t):t)}}}function be(e,t,n,o,r,a,s,u,i,c){var _,p,l,d,h,v,m,g,f,b,D,k,I,F,M,w,x=t.type;if(t.constructor!==void 0)return null;128&n.__u&&(i=!!(32&n.__u),a=[u=t.__e=n.__e]),(_=S.__b)&&_(t);e:if(typeof x=="function"){p=s.length;try{if(f=t.props,b=x.prototype&&x.prototype.render,D=(_=x.contextType)&&o[_.__c],k=_?D?D.props.value:_.__:o,n.__c?g=(l=t.__c=n.__c).__=l.__E:(b?t.__c=l=new x(f,k):(t.__c=l=new z(f,k),l.constructor=x,l.render=it),D&&D.sub(l),l.state||(l.state={}),l.__n=o,d=l.__d=!0,l.__h=[],l._sb=[]),b&&l.__s==null&&(l.__s=l.state),b&&x.getDerivedStateFromProps!=null&&(l.__s==l.state&&(l.__s=U({},l.__s)),U(l.__s,x.getDerivedStateFromProps(f,l.__s))),h=l.props,v=l.state,l.__v=t,d)b&&x.getDerivedStateFromProps==null&&l.componentWillMount!=null&&l.componentWillMount(),b&&l.componentDidMount!=null&&l.__h.push(l.componentDidMount);else{if(b&&x.getDerivedStateFromProps==null&&f!==h&&l.componentWillReceiveProps!=null&&l.componentWillReceiveProps(f,k),t.__v==n.__v||!l.__e&&l.shouldComponentUpdate!=null&&l.shouldComponentUpdate(f,l.__s,k)===!1){t.__v!=n.__v&&(l.props=f,l.state=l.__s,l.__d=!1),t.__e=n.__e,t.__k=n.__k,t.__k.some(function(N){N&&(N.__=t)}),Y.push.apply(l.__h,l._sb),l._sb=[],l.__h.length&&s.push(l),u=R(n);break e}l.componentWillUpdate!=null&&l.componentWillUpdate(f,l.__s,k),b&&l.componentDidUpdate!=null&&l.__h.push(function(){l.componentDidUpdate(h,v,m)})}if(l.context=k,l.props=f,l.__P=e,l.__e=!1,I=S.__r,F=0,b)l.state=l.__s,l.__d=!1,I&&I(t),_=l.render(l.props,l.state,l.context),Y.push.apply(l.__h,l._sb),l._sb=[];else do l.__d=!1,I&&I(t),_=l.render(l.props,l.state,l.context),l.state=l.__s;while(l.__d&&++F<25);l.state=l.__s,l.getChildContext!=null&&(o=U(U({},o),l.getChildContext())),b&&!d&&l.getSnapshotBeforeUpdate!=null&&(m=l.getSnapshotBeforeUpdate(h,v)),M=_!=null&&_.type===ae&&_.key==null?Qe(_.props.children):_,u=Be(e,oe(M)?M:[M],t,n,o,r,a,s,u,i,c),l.base=t.__e,t.__u&=-161,l.__h.length&&s.push(l),g&&(l.__E=l.__=null)}catch(N){if(s.length=p,t.__v=null,i||a!=null){if(N.then){for(t.__u|=i?160:128;u&&u.nodeType==8&&u.nextSibling;)u=u.nextSibling;a!=null&&(a[a.indexOf(u)]=null),t.__e=u}else if(a!=null)for(w=a.length;w--;)he(a[w])}else t.__e=n.__e;t.__k==null&&(t.__k=n.__k||[]),N.then||ze(t),S.__e(N,t,n)}}else a==null&&t.__v==n.__v?(t.__k=n.__k,t.__e=n.__e):u=t.__e=st(n.__e,t,n,o,r,a,s,i,c);return(_=S.diffed)&&_(t),128&t.__u?void 0:u}function ze(e){e&&(e.__c&&(e.__c.__e=!0),e.__k&&e.__k.some(ze))}function Je(e,t,n){for(var o=0;o<n.length;o++)ve(n[o],n[++o],n[++o]);S.__c&&S.__c(t,e),e.some(function(r){try{e=r.__h,r.__h=[],e.some(function(a){a.call(r)})}catch(a){S.__e(a,r.__v)}})}function Qe(e){return typeof e!="object"||e==null||e.__b>0?e:oe(e)?e.map(Qe):e.constructor!==void 0?null:U({},e)}function st(e,t,n,o,r,a,s,u,i){var c,_,p,l,d,h,v,m=n.props||Q,g=t.props,f=t.type;if(f=="svg"?r="http://www.w3.org/2000/svg":f=="math"?r="http://www.w3.org/1998/Math/MathML":r||(r="http://www.w3.org/1999/xhtml"),a!=null){for(c=0;c<a.length;c++)if((d=a[c])&&"setAttribute"in d==!!f&&(f?d.localName==f:d.nodeType==3)){e=d,a[c]=null;break}}if(e==null){if(f==null)return document.createTextNode(g);e=document.createElementNS(r,f,g.is&&g),u&&(S.__m&&S.__m(t,a),u=!1),a=null}if(f==null)m===g||u&&e.data==g||(e.data=g);else{if(a=f=="textarea"&&g.defaultValue!=null?null:a&&ne.call(e.childNodes),!u&&a!=null)for(m={},c=0;c<e.attributes.length;c++)m[(d=e.attributes[c]).name]=d.value;for(c in m)d=m[c],c=="dangerouslySetInnerHTML"?p=d:c=="children"||c in g||c=="value"&&"defaultValue"in g||c=="checked"&&"defaultChecked"in g||V(e,c,null,d,r);for(c in g)d=g[c],c=="children"?l=d:c=="dangerouslySetInnerHTML"?_=d:c=="value"?h=d:c=="checked"?v=d:u&&typeof d!="function"||m[c]===d||V(e,c,d,m[c],r);if(_)u||p&&(_.__html==p.__html||_.__html==e.innerHTML)||(e.innerHTML=_.__html),t.__k=[];else if(p&&(e.innerHTML=""),Be(t.type=="template"?e.content:e,oe(l)?l:[l],t,n,o,f=="foreignObject"?"http://www.w3.org/1999/xhtml":r,a,s,a?a[0]:n.__k&&R(n,0),u,i),a!=null)for(c=a.length;c--;)he(a[c]);u&&f!="textarea"||(c="value",f=="progress"&&h==null?e.removeAttribute("value"):h!=null&&(h!==e[c]||f=="progress"&&!h||f=="option"&&h!=m[c])&&V(e,c,h,m[c],r),c="checked",v!=null&&v!=e[c]&&V(e,c,v,m[c],r))}return e}function ve(e,t,n){try{if(typeof e=="function"){var o=typeof e.__u=="function";o&&e.__u(),o&&t==null||(e.__u=e(t))}else e.current=t}catch(r){S.__e(r,n)}}function Ye(e,t,n){var o,r;if(S.unmount&&S.unmount(e),(o=e.ref)&&(o.current&&o.current!=e.__e||ve(o,null,t)),(o=e.__c)!=null){if(o.componentWillUnmount)try{o.componentWillUnmount()}catch(a){S.__e(a,t)}o.base=o.__P=o.__n=null}if(o=e.__k)for(r=0;r<o.length;r++)o[r]&&Ye(o[r],t,n||typeof e.type!="function");n||he(e.__e),e.__c=e.__=e.__e=void 0}function it(e,t,n){return this.constructor(e,n)}function ut(e,t,n){var o,r,a,s;t==document&&(t=document.documentElement),S.__&&S.__(e,t),r=(o=!1)?null:t.__k,a=[],s=[],be(t,e=t.__k=je(ae,null,[e]),r||Q,Q,t.namespaceURI,r?null:t.firstChild?ne.call(t.childNodes):null,a,r?r.__e:t.firstChild,o,s),Je(a,e,s),e.props.children=null}ne=Y.slice,S={__e:function(e,t,n,o){for(var r,a,s;t=t.__;)if((r=t.__c)&&!r.__)try{if((a=r.constructor)&&a.getDerivedStateFromError!=null&&(r.setState(a.getDerivedStateFromError(e)),s=r.__d),r.componentDidCatch!=null&&(r.componentDidCatch(e,o||{}),s=r.__d),s)return r.__E=r}catch(u){e=u}throw e}},Ge=0,z.prototype.setState=function(e,t){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=U({},this.state),typeof e=="function"&&(e=e(U({},n),this.props)),e&&U(n,e),e!=null&&this.__v&&(t&&this._sb.push(t),xe(this))},z.prototype.forceUpdate=function(e){this.__v&&(this.__e=!0,e&&this.__h.push(e),xe(this))},z.prototype.render=ae,H=[],Oe=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,We=function(e,t){return e.__v.__b-t.__v.__b},X.__r=0,ie=Math.random().toString(8),B="__d"+ie,G="__a"+ie,qe=/(PointerCapture)$|Capture$/i,me=0,_e=De(!1),de=De(!0);var O,T,ue,Te,W=0,Xe=[],C=S,Ce=C.__b,Ee=C.__r,Ae=C.diffed,Ne=C.__c,Pe=C.unmount,Me=C.__;function ge(e,t){C.__h&&C.__h(T,e,W||t),W=0;var n=T.__H||(T.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function y(e){return W=1,ct(et,e)}function ct(e,t,n){var o=ge(O++,2);if(o.t=e,!o.__c&&(o.__=[et(void 0,t),function(u){var i=o.__N?o.__N[0]:o.__[0],c=o.t(i,u);i!==c&&(o.__N=[c,o.__[1]],o.__c.setState({}))}],o.__c=T,!T.__f)){var r=function(u,i,c){if(!o.__c.__H)return!0;var _=!1,p=o.__c.props!==u;if(o.__c.__H.__.some(function(d){if(d.__N){_=!0;var h=d.__[0];d.__=d.__N,d.__N=void 0,h!==d.__[0]&&(p=!0)}}),a){var l=a.call(this,u,i,c);return _?l||p:l}return!_||p};T.__f=!0;var a=T.shouldComponentUpdate,s=T.componentWillUpdate;T.componentWillUpdate=function(u,i,c){if(this.__e){var _=a;a=void 0,r(u,i,c),a=_}s&&s.call(this,u,i,c)},T.shouldComponentUpdate=r}return o.__N||o.__}function L(e,t){var n=ge(O++,3);!C.__s&&Ze(n.__H,t)&&(n.__=e,n.u=t,T.__H.__h.push(n))}function ye(e){return W=5,ke(function(){return{current:e}},[])}function ke(e,t){var n=ge(O++,7);return Ze(n.__H,t)&&(n.__=e(),n.__H=t,n.__h=e),n.__}function pe(e,t){return W=8,ke(function(){return e},t)}function _t(){for(var e;e=Xe.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(J),t.__h.some(fe),t.__h=[]}catch(n){t.__h=[],C.__e(n,e.__v)}}}C.__b=function(e){T=null,Ce&&Ce(e)},C.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),Me&&Me(e,t)},C.__r=function(e){Ee&&Ee(e),O=0;var t=(T=e.__c).__H;t&&(ue===T?(t.__h=[],T.__h=[],t.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(t.__h.some(J),t.__h.some(fe),t.__h=[],O=0)),ue=T},C.diffed=function(e){Ae&&Ae(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&(Xe.push(t)!==1&&Te===C.requestAnimationFrame||((Te=C.requestAnimationFrame)||dt)(_t)),t.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),ue=T=null},C.__c=function(e,t){t.some(function(n){try{n.__h.some(J),n.__h=n.__h.filter(function(o){return!o.__||fe(o)})}catch(o){t.some(function(r){r.__h&&(r.__h=[])}),t=[],C.__e(o,n.__v)}}),Ne&&Ne(e,t)},C.unmount=function(e){Pe&&Pe(e);var t,n=e.__c;n&&n.__H&&(n.__H.__.some(function(o){try{J(o)}catch(r){t=r}}),n.__H=void 0,t&&C.__e(t,n.__v))};var Ie=typeof requestAnimationFrame=="function";function dt(e){var t,n=function(){clearTimeout(o),Ie&&cancelAnimationFrame(t),setTimeout(e)},o=setTimeout(n,35);Ie&&(t=requestAnimationFrame(n))}function J(e){var t=T,n=e.__c;typeof n=="function"&&(e.__c=void 0,n()),T=t}function fe(e){var t=T;e.__c=e.__(),T=t}function Ze(e,t){return!e||e.length!==t.length||t.some(function(n,o){return n!==e[o]})}function et(e,t){return typeof t=="function"?t(e):t}var tt=function(e,t,n,o){var r;t[0]=0;for(var a=1;a<t.length;a++){var s=t[a++],u=t[a]?(t[0]|=s?1:2,n[t[a++]]):t[++a];s===3?o[0]=u:s===4?o[1]=Object.assign(o[1]||{},u):s===5?(o[1]=o[1]||{})[t[++a]]=u:s===6?o[1][t[++a]]+=u+"":s?(r=e.apply(u,tt(e,u,n,["",null])),o.push(r),u[0]?t[0]|=2:(t[a-2]=0,t[a]=r)):o.push(u)}return o},Ue=new Map;function pt(e){var t=Ue.get(this);return t||(t=new Map,Ue.set(this,t)),(t=tt(this,t.get(e)||(t.set(e,t=(function(n){for(var o,r,a=1,s="",u="",i=[0],c=function(l){a===1&&(l||(s=s.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?i.push(0,l,s):a===3&&(l||s)?(i.push(3,l,s),a=2):a===2&&s==="..."&&l?i.push(4,l,0):a===2&&s&&!l?i.push(5,0,!0,s):a>=5&&((s||!l&&a===5)&&(i.push(a,0,s,r),a=6),l&&(i.push(a,l,0,r),a=6)),s=""},_=0;_<n.length;_++){_&&(a===1&&c(),c(_));for(var p=0;p<n[_].length;p++)o=n[_][p],a===1?o==="<"?(c(),i=[i],a=3):s+=o:a===4?s==="--"&&o===">"?(a=1,s=""):s=o+s[0]:u?o===u?u="":s+=o:o==='"'||o==="'"?u=o:o===">"?(c(),a=1):a&&(o==="="?(a=5,r=s,s=""):o==="/"&&(a<5||n[_][p+1]===">")?(c(),a===3&&(i=i[0]),a=i,(i=i[0]).push(2,0,a),a=0):o===" "||o==="	"||o===`
`||o==="\r"?(c(),a=2):s+=o),a===3&&s==="!--"&&(a=4,i=i[0])}return c(),i})(e)),t),arguments,[])).length>1?t:t[0]}const Z="parkway.token";function ft(){const e=/(?:^#|&)token=([^&]*)/.exec(location.hash);if(e){const t=decodeURIComponent(e[1]),n=location.hash.replace(/(^#|&)token=[^&]*/,"$1").replace(/^#&/,"#");history.replaceState(null,"",location.pathname+location.search+(n==="#"?"":n)),t&&sessionStorage.setItem(Z,t)}return sessionStorage.getItem(Z)||""}function ce(e){e?sessionStorage.setItem(Z,e):sessionStorage.removeItem(Z)}class $e extends Error{constructor(t,n){super(n),this.status=t}}function $t(e,t){return async function(o,r,a){const s={method:o,headers:{Authorization:`Bearer ${e}`},cache:"no-store"};a!==void 0&&(s.headers["Content-Type"]="application/json",s.body=JSON.stringify(a));let u;try{u=await fetch(r,s)}catch(_){throw new $e(0,`parkway is not reachable (${_.message})`)}const i=await u.text();let c=null;try{c=i?JSON.parse(i):null}catch{c=null}if(!u.ok){u.status===401&&t&&t();const _=c&&typeof c.error=="string"?c.error:i||u.statusText;throw new $e(u.status,`${u.status}: ${_}`)}return c}}const E=encodeURIComponent;function mt(e){let t="",n="",o=null,r=[];return function(s){for(t+=s;;){const u=t.indexOf(`
`);if(u<0)break;let i=t.slice(0,u);if(t=t.slice(u+1),i.endsWith("\r")&&(i=i.slice(0,-1)),i===""){r.length&&e({type:n||"message",id:o,data:r.join(`
`)}),n="",r=[];continue}if(i.startsWith(":"))continue;const c=i.indexOf(":"),_=c<0?i:i.slice(0,c);let p=c<0?"":i.slice(c+1);p.startsWith(" ")&&(p=p.slice(1)),_==="event"?n=p:_==="data"?r.push(p):_==="id"&&(o=p)}}}function ht({token:e,onOpen:t,onEvent:n,onStatus:o,retryMs:r=3e3}){const a=new AbortController,s=u=>new Promise(i=>setTimeout(i,u));return(async()=>{for(;!a.signal.aborted;){try{const u=await fetch("/api/events",{headers:{Authorization:`Bearer ${e}`,Accept:"text/event-stream"},cache:"no-store",signal:a.signal});if(u.status===401){o("unauthorized");return}if(!u.ok||!u.body)throw new Error(`HTTP ${u.status}`);o("live"),t();const i=u.body.getReader(),c=new TextDecoder,_=mt(p=>{let l=null;try{l=JSON.parse(p.data)}catch{return}n(p.type,l,p.id)});for(;;){const{value:p,done:l}=await i.read();if(l)break;_(c.decode(p,{stream:!0}))}}catch{if(a.signal.aborted)return}o("reconnecting"),await s(r)}})(),()=>a.abort()}const $=pt.bind(je),bt=[["parked","Parked calls"],["lots","Lots"],["groups","Groups"],["rules","Rules"],["domains","Domains"],["users","Users"],["events","Events"]];function He(e){if(e==null||Number.isNaN(e))return"–";const t=e<0;let n=Math.floor(Math.abs(e)/1e3);const o=Math.floor(n/3600);n-=o*3600;const r=Math.floor(n/60);n-=r*60;const a=o?`${o}h${String(r).padStart(2,"0")}m`:r?`${r}m${String(n).padStart(2,"0")}s`:`${n}s`;return t?`-${a}`:a}function ee(e){return e.lot?`${e.lot} / ${e.slot}`:e.extension}function te(e){return e.parked_display?`${e.parked_display} <${e.parked_uri}>`:e.parked_uri}const Le=["id","domain","dpid","pr","match_op","match_exp","match_len","subst_exp","repl_exp","attrs","disabled","continue"],vt=["exact","regex","glob"];function gt(e){const t=[Le.join("	")];for(const n of e)t.push(Le.map(o=>{const r=n[o];return o==="match_op"?vt[r]??r:typeof r=="boolean"?r?"1":"0":r==null?"":String(r)}).join("	"));return t.join(`
`)+`
`}function re(e){const[t,n]=y(e[0]||"");return L(()=>{!t&&e[0]&&n(e[0])},[e]),[t,n]}function q(e,t){const[n,o]=y({loading:!0,value:null,error:null}),r=pe(()=>(o(a=>({...a,loading:!0})),e().then(a=>o({loading:!1,value:a,error:null}),a=>o({loading:!1,value:null,error:a}))),t);return L(()=>{r()},[r]),[n,r]}function yt({onToken:e,refused:t}){const[n,o]=y("");return $`
    <main class="login">
      <h1>Parkway console</h1>
      <form onSubmit=${r=>{r.preventDefault(),n.trim()&&e(n.trim())}}>
        <label for="token">Admin token <span class="hint">(admin.token in the daemon's config)</span></label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus
          value=${n} onInput=${r=>o(r.currentTarget.value)} />
        <button type="submit">Sign in</button>
        ${t&&$`<p role="alert" class="error">The token was refused (401). Check admin.token.</p>`}
        <p class="hint">Kept in this tab's session storage only. Wall displays can open <code>/ui/#token=…</code>.</p>
      </form>
    </main>`}function kt({notice:e,onClose:t}){return e?$`<div class=${`notice ${e.kind}`} role=${e.kind==="error"?"alert":"status"}>
    <span class="notice-text">${e.text}</span>
    <button type="button" class="link" onClick=${t} aria-label="Dismiss message">×</button>
  </div>`:null}function j({domains:e,value:t,onChange:n,id:o,all:r}){return $`<select id=${o} value=${t} onChange=${a=>n(a.currentTarget.value)}>
    ${r&&$`<option value="">All domains</option>`}
    ${e.map(a=>$`<option value=${a}>${a}</option>`)}
  </select>`}function wt(e){return e.id>0?`rule ${e.id}:`:e.id<0?"default:":"new rule:"}function Re({ex:e}){if(!e)return null;const t=e.result||{},n=(e.trace||[]).filter(o=>o.matched);return $`<dl class="explain" aria-label="Explain result">
    <dt>Action</dt><dd data-testid="explain-action">${t.action||"–"}</dd>
    ${e.would_park_on!==void 0&&$`<dt>Would park on</dt><dd data-testid="explain-park-on">${e.would_park_on}</dd>`}
    ${e.would_park_slot&&$`<dt>Would park in</dt><dd>${e.would_park_slot.lot} / ${e.would_park_slot.slot}</dd>`}
    ${e.would_retrieve&&$`<dt>Would retrieve</dt><dd>call ${e.would_retrieve.id} (${ee(e.would_retrieve)})</dd>`}
    ${e.would_fail&&e.would_fail!=="none"&&$`<dt>Would fail</dt><dd class="error">${e.would_fail}: ${e.would_fail_message}</dd>`}
    <dt>Matched rules</dt><dd>${n.length?n.map(o=>`${wt(o.rule)} ${o.rule.match_exp} → ${o.rule.attrs}`).join("; "):"none"}</dd>
    ${e.recall&&$`<dt>Recall</dt><dd>after ${e.recall.recall_seconds}s, ${e.recall.mode}</dd>`}
  </dl>`}function xt({call:e,lots:t,act:n,onDone:o}){const[r,a]=y("extension"),[s,u]=y(""),[i,c]=y(t[0]?.name||""),[_,p]=y(""),l=`move-${e.id}`;return $`<form class="inline" onSubmit=${async h=>{h.preventDefault();const v=r==="extension"?{extension:s}:{lot:i,slot:_?Number(_):0};await n(`Call ${e.id} moved`,"POST",`/api/parked/${e.id}/move`,v)&&o()}} aria-label=${`Move call ${e.id}`}>
    <label for=${`${l}-kind`}>Move to</label>
    <select id=${`${l}-kind`} value=${r} onChange=${h=>a(h.currentTarget.value)}>
      <option value="extension">extension</option>
      <option value="slot">lot slot</option>
    </select>
    ${r==="extension"?$`<label for=${`${l}-ext`} class="sr-only">Extension</label>
          <input id=${`${l}-ext`} size="6" required value=${s} onInput=${h=>u(h.currentTarget.value)} placeholder="104" />`:$`<label for=${`${l}-lot`} class="sr-only">Lot</label>
          <select id=${`${l}-lot`} value=${i} onChange=${h=>c(h.currentTarget.value)}>
            ${t.map(h=>$`<option value=${h.name}>${h.name}</option>`)}
          </select>
          <label for=${`${l}-slot`} class="sr-only">Slot (empty = first free)</label>
          <input id=${`${l}-slot`} size="4" inputmode="numeric" value=${_} onInput=${h=>p(h.currentTarget.value)} placeholder="any" />`}
    <button type="submit">Move</button>
    <button type="button" class="secondary" onClick=${o}>Cancel</button>
  </form>`}function St({c:e,now:t,act:n,lots:o}){const[r,a]=y(!1),[s,u]=y(!1),i=e.recall_at?e.recall_at-t:null;return $`
    <tr data-call-id=${e.id} class=${`state-${e.state}`}>
      <td data-label="Parked on" class="strong">${ee(e)}${e.group&&$` <span class="tag">group ${e.group}</span>`}</td>
      <td data-label="Parked party">${te(e)}</td>
      <td data-label="Parker">${e.parker||"–"}</td>
      <td data-label="For" class="num" data-testid="parked-for">${He(Math.max(0,t-e.parked_at))}</td>
      <td data-label="Recall in" class="num">${e.state==="recalling"?"now":He(i)}</td>
      <td data-label="Stage" class="num">${e.recall_stage}</td>
      <td data-label="State"><span class=${`badge ${e.state}`} data-testid="call-state">${e.state}</span></td>
      <td data-label="Actions" class="actions">
        <button type="button" onClick=${()=>n(`Recall of call ${e.id} started`,"POST",`/api/parked/${e.id}/recall`)}
          aria-label=${`Recall call ${e.id} on ${ee(e)} now`}>Recall now</button>
        ${s?$`<button type="button" class="danger" onClick=${()=>{u(!1),n(`Call ${e.id} hung up`,"DELETE",`/api/parked/${e.id}`)}}
              aria-label=${`Confirm: hang up call ${e.id}`}>Confirm hang up</button>
             <button type="button" class="secondary" onClick=${()=>u(!1)}>Keep</button>`:$`<button type="button" class="danger" onClick=${()=>u(!0)} aria-label=${`Hang up call ${e.id}`}>Hang up</button>`}
        <button type="button" class="secondary" onClick=${()=>a(!r)} aria-expanded=${r}
          aria-label=${`Move call ${e.id}`}>Move</button>
        ${r&&$`<${xt} call=${e} lots=${o.filter(c=>c.domain===e.domain)} act=${n} onDone=${()=>a(!1)} />`}
      </td>
    </tr>`}function Dt({calls:e,now:t,act:n,domains:o,lots:r}){var v;const[a,s]=y(""),[u,i]=y(""),[c,_]=y(""),p=e.filter(m=>(!a||m.domain===a)&&(!u||m.lot===u)&&(!c||m.group===c)),l={};for(const m of p)(l[v=m.domain]||(l[v]=[])).push(m);const d=[...new Set(e.map(m=>m.lot).filter(Boolean))],h=[...new Set(e.map(m=>m.group).filter(Boolean))];return $`<section aria-labelledby="parked-h">
    <h2 id="parked-h">Parked calls <span class="count" data-testid="parked-count">${e.length}</span></h2>
    <div class="filters">
      <label for="f-domain">Domain</label><${j} id="f-domain" domains=${o} value=${a} onChange=${s} all />
      <label for="f-lot">Lot</label>
      <select id="f-lot" value=${u} onChange=${m=>i(m.currentTarget.value)}><option value="">any</option>${d.map(m=>$`<option>${m}</option>`)}</select>
      <label for="f-group">Group</label>
      <select id="f-group" value=${c} onChange=${m=>_(m.currentTarget.value)}><option value="">any</option>${h.map(m=>$`<option>${m}</option>`)}</select>
    </div>
    ${p.length===0&&$`<p class="empty">No parked calls.</p>`}
    ${Object.keys(l).sort().map(m=>$`
      <h3>${m}</h3>
      <div class="table-wrap">
        <table class="calls" aria-label=${`Parked calls in ${m}`}>
          <thead><tr><th scope="col">Parked on</th><th scope="col">Parked party</th><th scope="col">Parker</th><th scope="col">For</th>
            <th scope="col">Recall in</th><th scope="col">Stage</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
          <tbody>${l[m].map(g=>$`<${St} key=${g.id} c=${g} now=${t} act=${n} lots=${r} />`)}</tbody>
        </table>
      </div>`)}
  </section>`}function Tt({api:e,calls:t,act:n,domains:o}){const[r,a]=q(()=>e("GET","/api/lots"),[]),[s,u]=re(o),[i,c]=y({name:"",first:"",last:"",choice:"first"}),_=r.value?.lots||[],p=async d=>{d.preventDefault();const h={first:Number(i.first),last:Number(i.last),choice:i.choice};await n(`Lot ${i.name} saved`,"PUT",`/api/lots/${E(s)}/${E(i.name)}`,h)&&a()},l=d=>h=>c({...i,[d]:h.currentTarget.value});return $`<section aria-labelledby="lots-h">
    <h2 id="lots-h">Lots</h2>
    ${r.error&&$`<p class="error" role="alert">${r.error.message}</p>`}
    ${_.length===0&&!r.loading&&$`<p class="empty">No lots.</p>`}
    ${_.map(d=>{const h=[];for(let v=d.first_slot;v<=d.last_slot&&h.length<500;v++){const m=t.find(f=>f.domain===d.domain&&f.lot===d.name&&f.slot===v),g=m?m.state==="recalling"?"recalling":"occupied":"free";h.push($`<li class=${`slot ${g}`} aria-label=${`Slot ${v}: ${g}${m?`, ${te(m)}`:""}`} title=${m?te(m):"free"}>
          <span class="slot-no">${v}</span><span class="slot-who">${m?m.parked_display||m.parked_uri:"free"}</span></li>`)}return $`<article class="card">
        <header class="card-h"><h3>${d.name} <span class="hint">${d.domain} · ${d.first_slot}–${d.last_slot} · ${d.choice}</span></h3>
          <button type="button" class="danger" onClick=${async()=>{await n(`Lot ${d.name} deleted`,"DELETE",`/api/lots/${E(d.domain)}/${E(d.name)}`)&&a()}}
            aria-label=${`Delete lot ${d.name}`}>Delete</button></header>
        <ul class="slots" aria-label=${`Slots of lot ${d.name}`}>${h}</ul>
      </article>`})}
    <form class="card form narrow" onSubmit=${p} aria-labelledby="lot-form-h">
      <h3 id="lot-form-h">Add or change a lot</h3>
      <label for="lot-domain">Domain</label><${j} id="lot-domain" domains=${o} value=${s} onChange=${u} />
      <label for="lot-name">Name</label><input id="lot-name" required value=${i.name} onInput=${l("name")} />
      <label for="lot-first">First slot</label><input id="lot-first" required inputmode="numeric" value=${i.first} onInput=${l("first")} />
      <label for="lot-last">Last slot</label><input id="lot-last" required inputmode="numeric" value=${i.last} onInput=${l("last")} />
      <label for="lot-choice">Slot choice</label>
      <select id="lot-choice" value=${i.choice} onChange=${l("choice")}><option value="first">first free</option><option value="next">next free</option></select>
      <button type="submit">Save lot</button>
    </form>
  </section>`}function Ct({g:e,calls:t,act:n,onSaved:o}){const[r,a]=y(e.members),[s,u]=y(""),[i,c]=y(null),[_,p]=y(""),l=ye(null);L(()=>a(e.members),[e]);const d=r.join(`
`)!==e.members.join(`
`),h=(f,b)=>{if(b<0||b>=r.length||f===b)return;const D=r.slice(),[k]=D.splice(f,1);D.splice(b,0,k),a(D),p(`${k} moved to position ${b+1} of ${D.length}`),requestAnimationFrame(()=>l.current?.querySelectorAll("li")[b]?.focus())},v=f=>b=>{b.altKey&&b.key==="ArrowUp"?(b.preventDefault(),h(f,f-1)):b.altKey&&b.key==="ArrowDown"?(b.preventDefault(),h(f,f+1)):b.key==="Delete"&&(b.preventDefault(),a(r.filter((D,k)=>k!==f)))},m=async()=>{const f=e.settings||{},b={members:r,notify_parker:e.notify_parker};f.recall_seconds&&(b.recall_time=f.recall_seconds),f.mode&&(b.recall_mode=f.mode),f.alternate&&(b.alternate=f.alternate),f.occupied&&(b.occupied_policy=f.occupied);for(const D of["ring_seconds","alternate_wait","retry_seconds"])f[D]&&(b[D]=f[D]);await n(`Group ${e.name} saved`,"PUT",`/api/groups/${E(e.domain)}/${E(e.name)}`,b)&&o()},g=`group-${e.domain}-${e.name}-hint`;return $`<article class="card" data-group=${e.name}>
    <header class="card-h"><h3>${e.name} <span class="hint">${e.domain}</span></h3>
      <button type="button" class="danger" aria-label=${`Delete group ${e.name}`}
        onClick=${async()=>{await n(`Group ${e.name} deleted`,"DELETE",`/api/groups/${E(e.domain)}/${E(e.name)}`)&&o()}}>Delete</button></header>
    <p id=${g} class="hint">Hunting order, first member first. Drag a member, or focus it and press Alt+↑ / Alt+↓; Delete removes it.</p>
    <ol class="members" ref=${l} aria-describedby=${g} aria-label=${`Members of group ${e.name}`}>
      ${r.map((f,b)=>{const D=t.filter(k=>k.domain===e.domain&&k.extension===f&&!k.lot);return $`<li key=${f} tabindex="0" draggable="true" data-member=${f}
            aria-label=${`${f}, position ${b+1} of ${r.length}${D.length?`, ${D.length} parked`:""}`}
            class=${i===b?"dragging":""}
            onKeyDown=${v(b)}
            onDragStart=${k=>{c(b),k.dataTransfer.effectAllowed="move",k.dataTransfer.setData("text/plain",f)}}
            onDragOver=${k=>k.preventDefault()}
            onDrop=${k=>{k.preventDefault(),i!==null&&h(i,b),c(null)}}
            onDragEnd=${()=>c(null)}>
          <span class="grip" aria-hidden="true">⋮⋮</span>
          <span class="member">${f}</span>
          <span class="parked-here">${D.map(k=>$`<span class="tag">${k.parked_display||k.parked_uri} · ${k.state}</span>`)}</span>
          <span class="reorder">
            <button type="button" class="icon" aria-label=${`Move ${f} up`} disabled=${b===0} onClick=${()=>h(b,b-1)}>↑</button>
            <button type="button" class="icon" aria-label=${`Move ${f} down`} disabled=${b===r.length-1} onClick=${()=>h(b,b+1)}>↓</button>
            <button type="button" class="icon" aria-label=${`Remove ${f}`} onClick=${()=>a(r.filter((k,I)=>I!==b))}>✕</button>
          </span>
        </li>`})}
    </ol>
    <p class="sr-only" aria-live="polite">${_}</p>
    <form class="inline" onSubmit=${f=>{f.preventDefault(),s.trim()&&!r.includes(s.trim())&&a([...r,s.trim()]),u("")}}>
      <label for=${`add-${e.domain}-${e.name}`}>Add member</label>
      <input id=${`add-${e.domain}-${e.name}`} size="8" value=${s} onInput=${f=>u(f.currentTarget.value)} />
      <button type="submit" class="secondary">Add</button>
    </form>
    <div class="buttons">
      <button type="button" onClick=${m} disabled=${!d}>Save group</button>
      <button type="button" class="secondary" onClick=${()=>a(e.members)} disabled=${!d}>Undo changes</button>
    </div>
  </article>`}function nt({api:e,domains:t,rulesText:n,idPrefix:o}){const[r,a]=re(t),[s,u]=y(""),[i,c]=y("*58"),[_,p]=y(null),[l,d]=y(null),[h,v]=y("");return $`<form class="card form" onSubmit=${async g=>{g.preventDefault(),v("");try{p(await e("GET",`/api/explain?domain=${E(r)}&caller=${E(s)}&dial=${E(i)}`)),d(n!==void 0?(await e("POST","/api/rules/check",{text:n,domain:r,caller:s,dial:i})).explain:null)}catch(f){p(null),d(null),v(f.message)}}} aria-labelledby=${`${o}-h`}>
    <h3 id=${`${o}-h`}>Explain a dial string</h3>
    <label for=${`${o}-domain`}>Domain</label><${j} id=${`${o}-domain`} domains=${t} value=${r} onChange=${a} />
    <label for=${`${o}-caller`}>Caller</label><input id=${`${o}-caller`} value=${s} onInput=${g=>u(g.currentTarget.value)} placeholder="1001" />
    <label for=${`${o}-dial`}>Dial</label><input id=${`${o}-dial`} required value=${i} onInput=${g=>c(g.currentTarget.value)} />
    <button type="submit">Explain</button>
    ${h&&$`<p class="error" role="alert">${h}</p>`}
    ${l&&$`<h4>With the edited rules (not applied yet)</h4><${Re} ex=${l} />`}
    ${_&&$`<h4>${n!==void 0?"With the rules in force":"Result"}</h4><div data-testid=${`${o}-result`}><${Re} ex=${_} /></div>`}
  </form>`}function Et({api:e,calls:t,act:n,domains:o}){const[r,a]=q(()=>e("GET","/api/groups"),[]),[s,u]=re(o),[i,c]=y({name:"",members:""}),_=r.value?.groups||[],p=async l=>{l.preventDefault();const d=i.members.split(/[\s,]+/).filter(Boolean);await n(`Group ${i.name} saved`,"PUT",`/api/groups/${E(s)}/${E(i.name)}`,{members:d})&&(c({...i,name:"",members:""}),a())};return $`<section aria-labelledby="groups-h">
    <h2 id="groups-h">Groups</h2>
    ${r.error&&$`<p class="error" role="alert">${r.error.message}</p>`}
    <div class="grid">
      ${_.map(l=>$`<${Ct} key=${`${l.domain}/${l.name}`} g=${l} calls=${t} act=${n} onSaved=${a} />`)}
      <form class="card form" onSubmit=${p} aria-labelledby="new-group-h">
        <h3 id="new-group-h">New group</h3>
        <label for="ng-domain">Domain</label><${j} id="ng-domain" domains=${o} value=${s} onChange=${u} />
        <label for="ng-name">Name</label><input id="ng-name" required value=${i.name} onInput=${l=>c({...i,name:l.currentTarget.value})} />
        <label for="ng-members">Members (in order)</label><input id="ng-members" value=${i.members} placeholder="1001 1002 1003" onInput=${l=>c({...i,members:l.currentTarget.value})} />
        <button type="submit">Create group</button>
      </form>
      <${nt} api=${e} domains=${o} idPrefix="gexplain" />
    </div>
  </section>`}function At({api:e,act:t,domains:n}){const[o,r]=q(()=>e("GET","/api/rules"),[]),[a,s]=y(null),[u,i]=y(null),c=o.value?gt(o.value.rules):"",_=a??c,p=async()=>{i(null);try{const v=await e("POST","/api/rules/check",{text:_});i({ok:!0,text:`Valid: ${v.rules} rule${v.rules===1?"":"s"}. Not applied yet.`})}catch(v){i({ok:!1,text:v.message})}},l=async()=>{i(null),await t("Rules applied","POST","/api/rules",{text:_,replace:!0})&&(s(null),r())},d=ye(!1),h=v=>{if(v.key==="Escape"){d.current=!0;return}if(v.key==="Tab"&&!d.current&&!v.shiftKey){v.preventDefault();const m=v.currentTarget,{selectionStart:g,selectionEnd:f}=m,b=m.value.slice(0,g)+"	"+m.value.slice(f);s(b),requestAnimationFrame(()=>{m.selectionStart=m.selectionEnd=g+1})}d.current=!1};return $`<section aria-labelledby="rules-h">
    <h2 id="rules-h">Dialplan rules</h2>
    ${o.error&&$`<p class="error" role="alert">${o.error.message}</p>`}
    <div class="grid wide">
      <div class="card form">
        <label for="rules-text">Stored rules, rules-file format (TAB-separated; docs/engine.md). The default feature codes need no rule.</label>
        <p id="rules-hint" class="hint">Tab types a TAB; press Escape then Tab to leave the editor. Apply replaces every stored rule at once.</p>
        <textarea id="rules-text" aria-describedby="rules-hint" spellcheck="false" rows="12" value=${_}
          onInput=${v=>{s(v.currentTarget.value),i(null)}} onKeyDown=${h}></textarea>
        <div class="buttons">
          <button type="button" onClick=${p}>Validate</button>
          <button type="button" onClick=${l} disabled=${a===null||a===c}>Apply</button>
          <button type="button" class="secondary" onClick=${()=>{s(null),i(null)}} disabled=${a===null}>Discard edits</button>
        </div>
        ${u&&$`<p class=${u.ok?"ok":"error"} role=${u.ok?"status":"alert"} data-testid="rules-check">${u.text}</p>`}
      </div>
      <${nt} api=${e} domains=${n} rulesText=${_} idPrefix="rexplain" />
    </div>
  </section>`}const Fe=[["park_code","Park code","text"],["group_park_code","Group park code","text"],["retrieve_code","Retrieve code","text"],["recall_time","Recall after (s)","number"],["max_parked","Max parked (0 = no cap)","number"],["max_parked_per_extension","Max per extension (0 = no cap)","number"]];function Nt({d:e,act:t,onSaved:n}){const o=()=>({park_code:e.park_code,group_park_code:e.group_park_code,retrieve_code:e.retrieve_code,recall_time:e.recall?.recall_seconds??"",max_parked:e.max_parked??0,max_parked_per_extension:e.max_parked_per_extension??0,occupied_policy:e.occupied,recall_mode:e.recall?.mode}),[r,a]=y(o);L(()=>a(o()),[e]);const s=i=>`dom-${e.name}-${i}`;return $`<form class="card form" onSubmit=${async i=>{i.preventDefault();const c={...r};for(const[_,,p]of Fe)p==="number"&&(c[_]=Number(c[_]));await t(`Domain ${e.name} saved`,"PUT",`/api/domains/${E(e.name)}`,c)&&n()}} aria-label=${`Settings of ${e.name}`}>
    <h3>${e.name}</h3>
    ${Fe.map(([i,c,_])=>$`<label for=${s(i)}>${c}</label>
      <input id=${s(i)} type=${_} value=${r[i]} onInput=${p=>a({...r,[i]:p.currentTarget.value})} />`)}
    <label for=${s("occ")}>When the extension is occupied</label>
    <select id=${s("occ")} value=${r.occupied_policy} onChange=${i=>a({...r,occupied_policy:i.currentTarget.value})}>
      <option value="stack">stack</option><option value="reject">reject</option></select>
    <label for=${s("mode")}>Recall mode</label>
    <select id=${s("mode")} value=${r.recall_mode} onChange=${i=>a({...r,recall_mode:i.currentTarget.value})}>
      <option value="parker">parker</option><option value="parker_then_alternate">parker, then alternate</option>
      <option value="alternate_only">alternate only</option></select>
    <button type="submit">Save ${e.name}</button>
  </form>`}function Pt({api:e,act:t,onChanged:n}){const[o,r]=q(()=>e("GET","/api/domains"),[]),a=()=>{r(),n()};return $`<section aria-labelledby="domains-h">
    <h2 id="domains-h">Domains</h2>
    ${o.error&&$`<p class="error" role="alert">${o.error.message}</p>`}
    <div class="grid">${(o.value?.domains||[]).map(s=>$`<${Nt} key=${s.name} d=${s} act=${t} onSaved=${a} />`)}</div>
  </section>`}function Mt({api:e,act:t,domains:n}){const[o,r]=re(n),[a,s]=q(()=>o?e("GET",`/api/users/${E(o)}`):Promise.resolve([]),[o]),[u,i]=y({user:"",password:"",register_for:""}),c=async p=>{p.preventDefault();const l={password:u.password,register_for:u.register_for.split(/[\s,]+/).filter(Boolean)};await t(`User ${u.user} saved`,"PUT",`/api/users/${E(o)}/${E(u.user)}`,l)&&(i({user:"",password:"",register_for:""}),s())},_=Array.isArray(a.value)?a.value:[];return $`<section aria-labelledby="users-h">
    <h2 id="users-h">SIP users</h2>
    <div class="filters"><label for="u-domain">Domain</label><${j} id="u-domain" domains=${n} value=${o} onChange=${r} /></div>
    ${a.error&&$`<p class="error" role="alert">${a.error.message}</p>`}
    <div class="table-wrap"><table aria-label=${`Users of ${o}`}>
      <thead><tr><th scope="col">User</th><th scope="col">May register for</th><th scope="col">Hashes</th><th scope="col">Actions</th></tr></thead>
      <tbody>${_.map(p=>$`<tr><td>${p.user}</td><td>${(p.register_for||[]).join(", ")||"–"}</td><td>${(p.algorithms||[]).join(", ")}</td>
        <td><button type="button" class="danger" aria-label=${`Delete user ${p.user}`}
          onClick=${async()=>{await t(`User ${p.user} deleted`,"DELETE",`/api/users/${E(o)}/${E(p.user)}`)&&s()}}>Delete</button></td></tr>`)}</tbody>
    </table></div>
    ${_.length===0&&!a.loading&&!a.error&&$`<p class="empty">No users in ${o}.</p>`}
    <form class="card form narrow" onSubmit=${c} aria-labelledby="user-form-h">
      <h3 id="user-form-h">Add a user or change a password</h3>
      <label for="u-user">User</label><input id="u-user" required value=${u.user} onInput=${p=>i({...u,user:p.currentTarget.value})} />
      <label for="u-pass">Password</label><input id="u-pass" type="password" autocomplete="new-password" required value=${u.password} onInput=${p=>i({...u,password:p.currentTarget.value})} />
      <label for="u-for">May register for (other users)</label><input id="u-for" value=${u.register_for} onInput=${p=>i({...u,register_for:p.currentTarget.value})} />
      <button type="submit">Save user</button>
    </form>
  </section>`}function It({events:e}){return $`<section aria-labelledby="events-h">
    <h2 id="events-h">Recent events</h2>
    ${e.length===0&&$`<p class="empty">No events since this page opened.</p>`}
    <ol class="events" reversed>
      ${e.map(t=>$`<li key=${t.seq}><time>${new Date(t.at).toLocaleTimeString()}</time>
        <span class=${`badge ${t.type}`}>${t.type}</span>
        <span>${t.call?`call ${t.call.id} · ${t.call.domain} · ${ee(t.call)} · ${te(t.call)}${t.call.parker?` · parker ${t.call.parker}`:""}`:""}</span></li>`)}
    </ol>
  </section>`}function Ut({token:e,onLogout:t,onRefused:n}){const o=ke(()=>$t(e,n),[e]),[r,a]=y(()=>new URLSearchParams(location.hash.slice(1)).get("view")||"parked"),[s,u]=y(new Map),[i,c]=y([]),[_,p]=y("connecting"),[l,d]=y(null),[h,v]=y(Date.now()),[m,g]=y([]),[f,b]=y([]),D=ye(new Set),k=pe(()=>{o("GET","/api/domains").then(w=>g(w.domains.map(x=>x.name)),()=>{}),o("GET","/api/lots").then(w=>b(w.lots),()=>{})},[o]);L(k,[k]),L(()=>{const w=setInterval(()=>v(Date.now()),1e3);return()=>clearInterval(w)},[]),L(()=>ht({token:e,onStatus:w=>{p(w),w==="unauthorized"&&n()},onOpen:()=>{o("GET","/api/parked").then(w=>u(x=>{const N=new Map;for(const A of w.parked){if(D.current.has(A.id))continue;const P=x.get(A.id);N.set(A.id,P&&P.version>A.version?P:A)}return N}),w=>d({kind:"error",text:w.message}))},onEvent:(w,x,N)=>{if(!x||!x.call)return;const A=x.call;v(Date.now()),u(P=>{const le=new Map(P);if(A.state==="gone"||w==="retrieved"||w==="abandoned")le.delete(A.id),D.current.add(A.id);else{const se=P.get(A.id);(!se||!(se.version>A.version))&&le.set(A.id,{...se,...A})}return le}),c(P=>[{seq:Number(N)||x.sequence,type:w,at:x.at||Date.now(),call:A},...P].slice(0,100))}}),[e]);const I=pe(async(w,x,N,A)=>{try{return await o(x,N,A),d({kind:"ok",text:w}),!0}catch(P){return d({kind:"error",text:P instanceof $e?P.message:String(P)}),!1}},[o]),F=[...s.values()].sort((w,x)=>w.parked_at-x.parked_at),M={api:o,act:I,domains:m,calls:F,now:h,lots:f};return $`
    <header class="top">
      <h1>Parkway</h1>
      <p class=${`status ${_}`} role="status" data-testid="stream-status">${_==="live"?"live":_}</p>
      <button type="button" class="secondary" onClick=${t}>Sign out</button>
    </header>
    <nav aria-label="Views"><ul class="tabs">
      ${bt.map(([w,x])=>$`<li><button type="button" aria-current=${r===w?"page":void 0}
        class=${r===w?"tab active":"tab"} onClick=${()=>a(w)}>${x}${w==="parked"?` (${F.length})`:""}</button></li>`)}
    </ul></nav>
    <${kt} notice=${l} onClose=${()=>d(null)} />
    <main>
      ${r==="parked"&&$`<${Dt} ...${M} />`}
      ${r==="lots"&&$`<${Tt} ...${M} />`}
      ${r==="groups"&&$`<${Et} ...${M} />`}
      ${r==="rules"&&$`<${At} ...${M} />`}
      ${r==="domains"&&$`<${Pt} ...${M} onChanged=${k} />`}
      ${r==="users"&&$`<${Mt} ...${M} />`}
      ${r==="events"&&$`<${It} events=${i} />`}
    </main>`}function Ht(){const[e,t]=y(ft),[n,o]=y(!1);return e?$`<${Ut} key=${e} token=${e}
    onLogout=${()=>{ce(""),t("")}}
    onRefused=${()=>{ce(""),o(!0),t("")}} />`:$`<${yt} refused=${n} onToken=${r=>{ce(r),o(!1),t(r)}} />`}ut($`<${Ht} />`,document.getElementById("app"));
