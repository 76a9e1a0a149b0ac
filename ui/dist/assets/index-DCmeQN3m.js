var ne,S,Fe,H,ke,Oe,Ge,se,B,O,We,$e,ce,_e,Q={},Y=[],nt=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,oe=Array.isArray;function U(e,t){for(var n in t)e[n]=t[n];return e}function me(e){e&&e.parentNode&&e.parentNode.removeChild(e)}function qe(e,t,n){var o,r,a,l={};for(a in t)a=="key"?o=t[a]:a=="ref"?r=t[a]:l[a]=t[a];if(arguments.length>2&&(l.children=arguments.length>3?ne.call(arguments,2):n),typeof e=="function"&&e.defaultProps!=null)for(a in e.defaultProps)l[a]===void 0&&(l[a]=e.defaultProps[a]);return K(e,l,o,r,null)}function K(e,t,n,o,r){var a={type:e,props:t,key:n,ref:o,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:r??++Fe,__i:-1,__u:0};return r==null&&S.vnode!=null&&S.vnode(a),a}function ae(e){return e.children}function z(e,t){this.props=e,this.context=t}function L(e,t){if(t==null)return e.__?L(e.__,e.__i+1):null;for(var n;t<e.__k.length;t++)if((n=e.__k[t])!=null&&n.__e!=null)return n.__e;return typeof e.type=="function"?L(e):null}function ot(e){if(e.__P&&e.__d){var t=e.__v,n=t.__e,o=[],r=[],a=U({},t);a.__v=t.__v+1,S.vnode&&S.vnode(a),he(e.__P,a,t,e.__n,e.__P.namespaceURI,32&t.__u?[n]:null,o,n??L(t),!!(32&t.__u),r),a.__v=t.__v,a.__.__k[a.__i]=a,ze(o,a,r),t.__e=t.__=null,a.__e!=n&&je(a)}}function je(e){if((e=e.__)!=null&&e.__c!=null)return e.__e=e.__c.base=null,e.__k.some(function(t){if(t!=null&&t.__e!=null)return e.__e=e.__c.base=t.__e}),je(e)}function we(e){(!e.__d&&(e.__d=!0)&&H.push(e)&&!X.__r++||ke!=S.debounceRendering)&&((ke=S.debounceRendering)||Oe)(X)}function X(){try{for(var e,t=1;H.length;)H.length>t&&H.sort(Ge),e=H.shift(),t=H.length,ot(e)}finally{H.length=X.__r=0}}function Ve(e,t,n,o,r,a,l,i,c,u,_){var d,s,p,m,v,h,y=o&&o.__k||Y,$=t.length;for(c=at(n,t,y,c,$),d=0;d<$;d++)(p=n.__k[d])!=null&&(s=p.__i!=-1&&y[p.__i]||Q,p.__i=d,h=he(e,p,s,r,a,l,i,c,u,_),m=p.__e,p.ref&&s.ref!=p.ref&&(s.ref&&be(s.ref,null,p),_.push(p.ref,p.__c||m,p)),v==null&&m!=null&&(v=m),4&p.__u?(c=Be(p,c,e),s.__e&&(s.__e=null)):typeof p.type=="function"&&h!==void 0?c=h:m&&(c=m.nextSibling),p.__u&=-7);return n.__e=v,c}function at(e,t,n,o,r){var a,l,i,c,u,_=n.length,d=_,s=0;for(e.__k=new Array(r),a=0;a<r;a++)(l=t[a])!=null&&typeof l!="boolean"&&typeof l!="function"?(typeof l=="string"||typeof l=="number"||typeof l=="bigint"||l.constructor==String?l=e.__k[a]=K(null,l,null,null,null):oe(l)?l=e.__k[a]=K(ae,{children:l},null,null,null):l.constructor===void 0&&l.__b>0?l=e.__k[a]=K(l.type,l.props,l.key,l.ref?l.ref:null,l.__v):e.__k[a]=l,c=a+s,l.__=e,l.__b=e.__b+1,i=null,(u=l.__i=rt(l,n,c,d))!=-1&&(d--,(i=n[u])&&(i.__u|=2)),i==null||i.__v==null?(u==-1&&(r>_?s--:r<_&&s++),typeof l.type!="function"&&(l.__u|=4)):u!=c&&(u==c-1?s--:u==c+1?s++:(u>c?s--:s++,l.__u|=4))):e.__k[a]=null;if(d)for(a=0;a<_;a++)(i=n[a])!=null&&(2&i.__u)==0&&(i.__e==o&&(o=L(i)),Qe(i,i));return o}function Be(e,t,n){var o,r;if(typeof e.type=="function"){for(o=e.__k,r=0;o&&r<o.length;r++)o[r]&&(o[r].__=e,t=Be(o[r],t,n));return t}e.__e!=t&&(t&&e.type&&!t.parentNode&&(t=L(e)),t=n.insertBefore(e.__e,t||null));do t=t&&t.nextSibling;while(t!=null&&t.nodeType==8);return t}function rt(e,t,n,o){var r,a,l,i=e.key,c=e.type,u=t[n],_=u!=null&&(2&u.__u)==0;if(u===null&&i==null||_&&i==u.key&&c==u.type)return n;if(o>(_?1:0)){for(r=n-1,a=n+1;r>=0||a<t.length;)if((u=t[l=r>=0?r--:a++])!=null&&(2&u.__u)==0&&i==u.key&&c==u.type)return l}return-1}function xe(e,t,n){t[0]=="-"?e.setProperty(t,n??""):e[t]=n==null?"":typeof n!="number"||nt.test(t)?n:n+"px"}function V(e,t,n,o,r){var a,l;e:if(t=="style")if(typeof n=="string")e.style.cssText=n;else{if(typeof o=="string"&&(e.style.cssText=o=""),o)for(t in o)n&&t in n||xe(e.style,t,"");if(n)for(t in n)o&&n[t]==o[t]||xe(e.style,t,n[t])}else if(t[0]=="o"&&t[1]=="n")a=t!=(t=t.replace(We,"$1")),l=t.toLowerCase(),t=l in e||t=="onFocusOut"||t=="onFocusIn"?l.slice(2):t.slice(2),e.l||(e.l={}),e.l[t+a]=n,n?o?n[O]=o[O]:(n[O]=$e,e.addEventListener(t,a?_e:ce,a)):e.removeEventListener(t,a?_e:ce,a);else{if(r=="http://www.w3.org/2000/svg")t=t.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(t!="width"&&t!="height"&&t!="href"&&t!="list"&&t!="form"&&t!="tabIndex"&&t!="download"&&t!="rowSpan"&&t!="colSpan"&&t!="role"&&t!="popover"&&t in e)try{e[t]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&t[4]!="-"?e.removeAttribute(t):e.setAttribute(t,t=="popover"&&n==1?"":n))}}function Se(e){return function(t){if(this.l){var n=this.l[t.type+e];if(t[B]==null)t[B]=$e++;else if(t[B]<n[O])return;return n(S.event?S.event(t):t)}}}function he(e,t,n,o,r,a,l,i,c,u){var _,d,s,p,m,v,h,y,$,b,E,k,I,F,M,w,x=t.type;if(t.constructor!==void 0)return null;128&n.__u&&(c=!!(32&n.__u),a=[i=t.__e=n.__e]),(_=S.__b)&&_(t);e:if(typeof x=="function"){d=l.length;try{if($=t.props,b=x.prototype&&x.prototype.render,E=(_=x.contextType)&&o[_.__c],k=_?E?E.props.value:_.__:o,n.__c?y=(s=t.__c=n.__c).__=s.__E:(b?t.__c=s=new x($,k):(t.__c=s=new z($,k),s.constructor=x,s.render=st),E&&E.sub(s),s.state||(s.state={}),s.__n=o,p=s.__d=!0,s.__h=[],s._sb=[]),b&&s.__s==null&&(s.__s=s.state),b&&x.getDerivedStateFromProps!=null&&(s.__s==s.state&&(s.__s=U({},s.__s)),U(s.__s,x.getDerivedStateFromProps($,s.__s))),m=s.props,v=s.state,s.__v=t,p)b&&x.getDerivedStateFromProps==null&&s.componentWillMount!=null&&s.componentWillMount(),b&&s.componentDidMount!=null&&s.__h.push(s.componentDidMount);else{if(b&&x.getDerivedStateFromProps==null&&$!==m&&s.componentWillReceiveProps!=null&&s.componentWillReceiveProps($,k),t.__v==n.__v||!s.__e&&s.shouldComponentUpdate!=null&&s.shouldComponentUpdate($,s.__s,k)===!1){t.__v!=n.__v&&(s.props=$,s.state=s.__s,s.__d=!1),t.__e=n.__e,t.__k=n.__k,t.__k.some(function(N){N&&(N.__=t)}),Y.push.apply(s.__h,s._sb),s._sb=[],s.__h.length&&l.push(s),i=L(n);break e}s.componentWillUpdate!=null&&s.componentWillUpdate($,s.__s,k),b&&s.componentDidUpdate!=null&&s.__h.push(function(){s.componentDidUpdate(m,v,h)})}if(s.context=k,s.props=$,s.__P=e,s.__e=!1,I=S.__r,F=0,b)s.state=s.__s,s.__d=!1,I&&I(t),_=s.render(s.props,s.state,s.context),Y.push.apply(s.__h,s._sb),s._sb=[];else do s.__d=!1,I&&I(t),_=s.render(s.props,s.state,s.context),s.state=s.__s;while(s.__d&&++F<25);s.state=s.__s,s.getChildContext!=null&&(o=U(U({},o),s.getChildContext())),b&&!p&&s.getSnapshotBeforeUpdate!=null&&(h=s.getSnapshotBeforeUpdate(m,v)),M=_!=null&&_.type===ae&&_.key==null?Je(_.props.children):_,i=Ve(e,oe(M)?M:[M],t,n,o,r,a,l,i,c,u),s.base=t.__e,t.__u&=-161,s.__h.length&&l.push(s),y&&(s.__E=s.__=null)}catch(N){if(l.length=d,t.__v=null,c||a!=null){if(N.then){for(t.__u|=c?160:128;i&&i.nodeType==8&&i.nextSibling;)i=i.nextSibling;a!=null&&(a[a.indexOf(i)]=null),t.__e=i}else if(a!=null)for(w=a.length;w--;)me(a[w])}else t.__e=n.__e;t.__k==null&&(t.__k=n.__k||[]),N.then||Ke(t),S.__e(N,t,n)}}else a==null&&t.__v==n.__v?(t.__k=n.__k,t.__e=n.__e):i=t.__e=lt(n.__e,t,n,o,r,a,l,c,u);return(_=S.diffed)&&_(t),128&t.__u?void 0:i}function Ke(e){e&&(e.__c&&(e.__c.__e=!0),e.__k&&e.__k.some(Ke))}function ze(e,t,n){for(var o=0;o<n.length;o++)be(n[o],n[++o],n[++o]);S.__c&&S.__c(t,e),e.some(function(r){try{e=r.__h,r.__h=[],e.some(function(a){a.call(r)})}catch(a){S.__e(a,r.__v)}})}function Je(e){return typeof e!="object"||e==null||e.__b>0?e:oe(e)?e.map(Je):e.constructor!==void 0?null:U({},e)}function lt(e,t,n,o,r,a,l,i,c){var u,_,d,s,p,m,v,h=n.props||Q,y=t.props,$=t.type;if($=="svg"?r="http://www.w3.org/2000/svg":$=="math"?r="http://www.w3.org/1998/Math/MathML":r||(r="http://www.w3.org/1999/xhtml"),a!=null){for(u=0;u<a.length;u++)if((p=a[u])&&"setAttribute"in p==!!$&&($?p.localName==$:p.nodeType==3)){e=p,a[u]=null;break}}if(e==null){if($==null)return document.createTextNode(y);e=document.createElementNS(r,$,y.is&&y),i&&(S.__m&&S.__m(t,a),i=!1),a=null}if($==null)h===y||i&&e.data==y||(e.data=y);else{if(a=$=="textarea"&&y.defaultValue!=null?null:a&&ne.call(e.childNodes),!i&&a!=null)for(h={},u=0;u<e.attributes.length;u++)h[(p=e.attributes[u]).name]=p.value;for(u in h)p=h[u],u=="dangerouslySetInnerHTML"?d=p:u=="children"||u in y||u=="value"&&"defaultValue"in y||u=="checked"&&"defaultChecked"in y||V(e,u,null,p,r);for(u in y)p=y[u],u=="children"?s=p:u=="dangerouslySetInnerHTML"?_=p:u=="value"?m=p:u=="checked"?v=p:i&&typeof p!="function"||h[u]===p||V(e,u,p,h[u],r);if(_)i||d&&(_.__html==d.__html||_.__html==e.innerHTML)||(e.innerHTML=_.__html),t.__k=[];else if(d&&(e.innerHTML=""),Ve(t.type=="template"?e.content:e,oe(s)?s:[s],t,n,o,$=="foreignObject"?"http://www.w3.org/1999/xhtml":r,a,l,a?a[0]:n.__k&&L(n,0),i,c),a!=null)for(u=a.length;u--;)me(a[u]);i&&$!="textarea"||(u="value",$=="progress"&&m==null?e.removeAttribute("value"):m!=null&&(m!==e[u]||$=="progress"&&!m||$=="option"&&m!=h[u])&&V(e,u,m,h[u],r),u="checked",v!=null&&v!=e[u]&&V(e,u,v,h[u],r))}return e}function be(e,t,n){try{if(typeof e=="function"){var o=typeof e.__u=="function";o&&e.__u(),o&&t==null||(e.__u=e(t))}else e.current=t}catch(r){S.__e(r,n)}}function Qe(e,t,n){var o,r;if(S.unmount&&S.unmount(e),(o=e.ref)&&(o.current&&o.current!=e.__e||be(o,null,t)),(o=e.__c)!=null){if(o.componentWillUnmount)try{o.componentWillUnmount()}catch(a){S.__e(a,t)}o.base=o.__P=o.__n=null}if(o=e.__k)for(r=0;r<o.length;r++)o[r]&&Qe(o[r],t,n||typeof e.type!="function");n||me(e.__e),e.__c=e.__=e.__e=void 0}function st(e,t,n){return this.constructor(e,n)}function it(e,t,n){var o,r,a,l;t==document&&(t=document.documentElement),S.__&&S.__(e,t),r=(o=!1)?null:t.__k,a=[],l=[],he(t,e=t.__k=qe(ae,null,[e]),r||Q,Q,t.namespaceURI,r?null:t.firstChild?ne.call(t.childNodes):null,a,r?r.__e:t.firstChild,o,l),ze(a,e,l),e.props.children=null}ne=Y.slice,S={__e:function(e,t,n,o){for(var r,a,l;t=t.__;)if((r=t.__c)&&!r.__)try{if((a=r.constructor)&&a.getDerivedStateFromError!=null&&(r.setState(a.getDerivedStateFromError(e)),l=r.__d),r.componentDidCatch!=null&&(r.componentDidCatch(e,o||{}),l=r.__d),l)return r.__E=r}catch(i){e=i}throw e}},Fe=0,z.prototype.setState=function(e,t){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=U({},this.state),typeof e=="function"&&(e=e(U({},n),this.props)),e&&U(n,e),e!=null&&this.__v&&(t&&this._sb.push(t),we(this))},z.prototype.forceUpdate=function(e){this.__v&&(this.__e=!0,e&&this.__h.push(e),we(this))},z.prototype.render=ae,H=[],Oe=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,Ge=function(e,t){return e.__v.__b-t.__v.__b},X.__r=0,se=Math.random().toString(8),B="__d"+se,O="__a"+se,We=/(PointerCapture)$|Capture$/i,$e=0,ce=Se(!1),_e=Se(!0);var G,T,ie,Te,W=0,Ye=[],D=S,De=D.__b,Ce=D.__r,Ee=D.diffed,Ae=D.__c,Ne=D.unmount,Pe=D.__;function ve(e,t){D.__h&&D.__h(T,e,W||t),W=0;var n=T.__H||(T.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function g(e){return W=1,ut(Ze,e)}function ut(e,t,n){var o=ve(G++,2);if(o.t=e,!o.__c&&(o.__=[Ze(void 0,t),function(i){var c=o.__N?o.__N[0]:o.__[0],u=o.t(c,i);c!==u&&(o.__N=[u,o.__[1]],o.__c.setState({}))}],o.__c=T,!T.__f)){var r=function(i,c,u){if(!o.__c.__H)return!0;var _=!1,d=o.__c.props!==i;if(o.__c.__H.__.some(function(p){if(p.__N){_=!0;var m=p.__[0];p.__=p.__N,p.__N=void 0,m!==p.__[0]&&(d=!0)}}),a){var s=a.call(this,i,c,u);return _?s||d:s}return!_||d};T.__f=!0;var a=T.shouldComponentUpdate,l=T.componentWillUpdate;T.componentWillUpdate=function(i,c,u){if(this.__e){var _=a;a=void 0,r(i,c,u),a=_}l&&l.call(this,i,c,u)},T.shouldComponentUpdate=r}return o.__N||o.__}function R(e,t){var n=ve(G++,3);!D.__s&&Xe(n.__H,t)&&(n.__=e,n.u=t,T.__H.__h.push(n))}function ge(e){return W=5,ye(function(){return{current:e}},[])}function ye(e,t){var n=ve(G++,7);return Xe(n.__H,t)&&(n.__=e(),n.__H=t,n.__h=e),n.__}function de(e,t){return W=8,ye(function(){return e},t)}function ct(){for(var e;e=Ye.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(J),t.__h.some(pe),t.__h=[]}catch(n){t.__h=[],D.__e(n,e.__v)}}}D.__b=function(e){T=null,De&&De(e)},D.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),Pe&&Pe(e,t)},D.__r=function(e){Ce&&Ce(e),G=0;var t=(T=e.__c).__H;t&&(ie===T?(t.__h=[],T.__h=[],t.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(t.__h.some(J),t.__h.some(pe),t.__h=[],G=0)),ie=T},D.diffed=function(e){Ee&&Ee(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&(Ye.push(t)!==1&&Te===D.requestAnimationFrame||((Te=D.requestAnimationFrame)||_t)(ct)),t.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),ie=T=null},D.__c=function(e,t){t.some(function(n){try{n.__h.some(J),n.__h=n.__h.filter(function(o){return!o.__||pe(o)})}catch(o){t.some(function(r){r.__h&&(r.__h=[])}),t=[],D.__e(o,n.__v)}}),Ae&&Ae(e,t)},D.unmount=function(e){Ne&&Ne(e);var t,n=e.__c;n&&n.__H&&(n.__H.__.some(function(o){try{J(o)}catch(r){t=r}}),n.__H=void 0,t&&D.__e(t,n.__v))};var Me=typeof requestAnimationFrame=="function";function _t(e){var t,n=function(){clearTimeout(o),Me&&cancelAnimationFrame(t),setTimeout(e)},o=setTimeout(n,35);Me&&(t=requestAnimationFrame(n))}function J(e){var t=T,n=e.__c;typeof n=="function"&&(e.__c=void 0,n()),T=t}function pe(e){var t=T;e.__c=e.__(),T=t}function Xe(e,t){return!e||e.length!==t.length||t.some(function(n,o){return n!==e[o]})}function Ze(e,t){return typeof t=="function"?t(e):t}var et=function(e,t,n,o){var r;t[0]=0;for(var a=1;a<t.length;a++){var l=t[a++],i=t[a]?(t[0]|=l?1:2,n[t[a++]]):t[++a];l===3?o[0]=i:l===4?o[1]=Object.assign(o[1]||{},i):l===5?(o[1]=o[1]||{})[t[++a]]=i:l===6?o[1][t[++a]]+=i+"":l?(r=e.apply(i,et(e,i,n,["",null])),o.push(r),i[0]?t[0]|=2:(t[a-2]=0,t[a]=r)):o.push(i)}return o},Ie=new Map;function dt(e){var t=Ie.get(this);return t||(t=new Map,Ie.set(this,t)),(t=et(this,t.get(e)||(t.set(e,t=(function(n){for(var o,r,a=1,l="",i="",c=[0],u=function(s){a===1&&(s||(l=l.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?c.push(0,s,l):a===3&&(s||l)?(c.push(3,s,l),a=2):a===2&&l==="..."&&s?c.push(4,s,0):a===2&&l&&!s?c.push(5,0,!0,l):a>=5&&((l||!s&&a===5)&&(c.push(a,0,l,r),a=6),s&&(c.push(a,s,0,r),a=6)),l=""},_=0;_<n.length;_++){_&&(a===1&&u(),u(_));for(var d=0;d<n[_].length;d++)o=n[_][d],a===1?o==="<"?(u(),c=[c],a=3):l+=o:a===4?l==="--"&&o===">"?(a=1,l=""):l=o+l[0]:i?o===i?i="":l+=o:o==='"'||o==="'"?i=o:o===">"?(u(),a=1):a&&(o==="="?(a=5,r=l,l=""):o==="/"&&(a<5||n[_][d+1]===">")?(u(),a===3&&(c=c[0]),a=c,(c=c[0]).push(2,0,a),a=0):o===" "||o==="	"||o===`
`||o==="\r"?(u(),a=2):l+=o),a===3&&l==="!--"&&(a=4,c=c[0])}return u(),c})(e)),t),arguments,[])).length>1?t:t[0]}const Z="parkway.token";function pt(){const e=/(?:^#|&)token=([^&]*)/.exec(location.hash);if(e){const t=decodeURIComponent(e[1]),n=location.hash.replace(/(^#|&)token=[^&]*/,"$1").replace(/^#&/,"#");history.replaceState(null,"",location.pathname+location.search+(n==="#"?"":n)),t&&sessionStorage.setItem(Z,t)}return sessionStorage.getItem(Z)||""}function ue(e){e?sessionStorage.setItem(Z,e):sessionStorage.removeItem(Z)}class fe extends Error{constructor(t,n){super(n),this.status=t}}function ft(e,t){return async function(o,r,a){const l={method:o,headers:{Authorization:`Bearer ${e}`},cache:"no-store"};a!==void 0&&(l.headers["Content-Type"]="application/json",l.body=JSON.stringify(a));let i;try{i=await fetch(r,l)}catch(_){throw new fe(0,`parkway is not reachable (${_.message})`)}const c=await i.text();let u=null;try{u=c?JSON.parse(c):null}catch{u=null}if(!i.ok){i.status===401&&t&&t();const _=u&&typeof u.error=="string"?u.error:c||i.statusText;throw new fe(i.status,`${i.status}: ${_}`)}return u}}const C=encodeURIComponent;function $t(e){let t="",n="",o=null,r=[];return function(l){for(t+=l;;){const i=t.indexOf(`
`);if(i<0)break;let c=t.slice(0,i);if(t=t.slice(i+1),c.endsWith("\r")&&(c=c.slice(0,-1)),c===""){r.length&&e({type:n||"message",id:o,data:r.join(`
`)}),n="",r=[];continue}if(c.startsWith(":"))continue;const u=c.indexOf(":"),_=u<0?c:c.slice(0,u);let d=u<0?"":c.slice(u+1);d.startsWith(" ")&&(d=d.slice(1)),_==="event"?n=d:_==="data"?r.push(d):_==="id"&&(o=d)}}}function mt({token:e,onOpen:t,onEvent:n,onStatus:o,retryMs:r=3e3}){const a=new AbortController,l=i=>new Promise(c=>setTimeout(c,i));return(async()=>{for(;!a.signal.aborted;){try{const i=await fetch("/api/events",{headers:{Authorization:`Bearer ${e}`,Accept:"text/event-stream"},cache:"no-store",signal:a.signal});if(i.status===401){o("unauthorized");return}if(!i.ok||!i.body)throw new Error(`HTTP ${i.status}`);o("live"),t();const c=i.body.getReader(),u=new TextDecoder,_=$t(d=>{let s=null;try{s=JSON.parse(d.data)}catch{return}n(d.type,s,d.id)});for(;;){const{value:d,done:s}=await c.read();if(s)break;_(u.decode(d,{stream:!0}))}}catch{if(a.signal.aborted)return}o("reconnecting"),await l(r)}})(),()=>a.abort()}const f=dt.bind(qe),ht=[["parked","Parked calls"],["lots","Lots"],["groups","Groups"],["rules","Rules"],["domains","Domains"],["users","Users"],["events","Events"]];function Ue(e){if(e==null||Number.isNaN(e))return"–";const t=e<0;let n=Math.floor(Math.abs(e)/1e3);const o=Math.floor(n/3600);n-=o*3600;const r=Math.floor(n/60);n-=r*60;const a=o?`${o}h${String(r).padStart(2,"0")}m`:r?`${r}m${String(n).padStart(2,"0")}s`:`${n}s`;return t?`-${a}`:a}function ee(e){return e.lot?`${e.lot} / ${e.slot}`:e.extension}function te(e){return e.parked_display?`${e.parked_display} <${e.parked_uri}>`:e.parked_uri}const He=["id","domain","dpid","pr","match_op","match_exp","match_len","subst_exp","repl_exp","attrs","disabled","continue"],bt=["exact","regex","glob"];function vt(e){const t=[He.join("	")];for(const n of e)t.push(He.map(o=>{const r=n[o];return o==="match_op"?bt[r]??r:typeof r=="boolean"?r?"1":"0":r==null?"":String(r)}).join("	"));return t.join(`
`)+`
`}function q(e,t){const[n,o]=g({loading:!0,value:null,error:null}),r=de(()=>(o(a=>({...a,loading:!0})),e().then(a=>o({loading:!1,value:a,error:null}),a=>o({loading:!1,value:null,error:a}))),t);return R(()=>{r()},[r]),[n,r]}function gt({onToken:e,refused:t}){const[n,o]=g("");return f`
    <main class="login">
      <h1>Parkway console</h1>
      <form onSubmit=${r=>{r.preventDefault(),n.trim()&&e(n.trim())}}>
        <label for="token">Admin token <span class="hint">(admin.token in the daemon's config)</span></label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus
          value=${n} onInput=${r=>o(r.currentTarget.value)} />
        <button type="submit">Sign in</button>
        ${t&&f`<p role="alert" class="error">The token was refused (401). Check admin.token.</p>`}
        <p class="hint">Kept in this tab's session storage only. Wall displays can open <code>/ui/#token=…</code>.</p>
      </form>
    </main>`}function yt({notice:e,onClose:t}){return e?f`<div class=${`notice ${e.kind}`} role=${e.kind==="error"?"alert":"status"}>
    <span class="notice-text">${e.text}</span>
    <button type="button" class="link" onClick=${t} aria-label="Dismiss message">×</button>
  </div>`:null}function j({domains:e,value:t,onChange:n,id:o,all:r}){return f`<select id=${o} value=${t} onChange=${a=>n(a.currentTarget.value)}>
    ${r&&f`<option value="">All domains</option>`}
    ${e.map(a=>f`<option value=${a}>${a}</option>`)}
  </select>`}function kt(e){return e.id>0?`rule ${e.id}:`:e.id<0?"default:":"new rule:"}function Re({ex:e}){if(!e)return null;const t=e.result||{},n=(e.trace||[]).filter(o=>o.matched);return f`<dl class="explain" aria-label="Explain result">
    <dt>Action</dt><dd data-testid="explain-action">${t.action||"–"}</dd>
    ${e.would_park_on!==void 0&&f`<dt>Would park on</dt><dd data-testid="explain-park-on">${e.would_park_on}</dd>`}
    ${e.would_park_slot&&f`<dt>Would park in</dt><dd>${e.would_park_slot.lot} / ${e.would_park_slot.slot}</dd>`}
    ${e.would_retrieve&&f`<dt>Would retrieve</dt><dd>call ${e.would_retrieve.id} (${ee(e.would_retrieve)})</dd>`}
    ${e.would_fail&&e.would_fail!=="none"&&f`<dt>Would fail</dt><dd class="error">${e.would_fail}: ${e.would_fail_message}</dd>`}
    <dt>Matched rules</dt><dd>${n.length?n.map(o=>`${kt(o.rule)} ${o.rule.match_exp} → ${o.rule.attrs}`).join("; "):"none"}</dd>
    ${e.recall&&f`<dt>Recall</dt><dd>after ${e.recall.recall_seconds}s, ${e.recall.mode}</dd>`}
  </dl>`}function wt({call:e,lots:t,act:n,onDone:o}){const[r,a]=g("extension"),[l,i]=g(""),[c,u]=g(t[0]?.name||""),[_,d]=g(""),s=`move-${e.id}`;return f`<form class="inline" onSubmit=${async m=>{m.preventDefault();const v=r==="extension"?{extension:l}:{lot:c,slot:_?Number(_):0};await n(`Call ${e.id} moved`,"POST",`/api/parked/${e.id}/move`,v)&&o()}} aria-label=${`Move call ${e.id}`}>
    <label for=${`${s}-kind`}>Move to</label>
    <select id=${`${s}-kind`} value=${r} onChange=${m=>a(m.currentTarget.value)}>
      <option value="extension">extension</option>
      <option value="slot">lot slot</option>
    </select>
    ${r==="extension"?f`<label for=${`${s}-ext`} class="sr-only">Extension</label>
          <input id=${`${s}-ext`} size="6" required value=${l} onInput=${m=>i(m.currentTarget.value)} placeholder="104" />`:f`<label for=${`${s}-lot`} class="sr-only">Lot</label>
          <select id=${`${s}-lot`} value=${c} onChange=${m=>u(m.currentTarget.value)}>
            ${t.map(m=>f`<option value=${m.name}>${m.name}</option>`)}
          </select>
          <label for=${`${s}-slot`} class="sr-only">Slot (empty = first free)</label>
          <input id=${`${s}-slot`} size="4" inputmode="numeric" value=${_} onInput=${m=>d(m.currentTarget.value)} placeholder="any" />`}
    <button type="submit">Move</button>
    <button type="button" class="secondary" onClick=${o}>Cancel</button>
  </form>`}function xt({c:e,now:t,act:n,lots:o}){const[r,a]=g(!1),[l,i]=g(!1),c=e.recall_at?e.recall_at-t:null;return f`
    <tr data-call-id=${e.id} class=${`state-${e.state}`}>
      <td data-label="Parked on" class="strong">${ee(e)}${e.group&&f` <span class="tag">group ${e.group}</span>`}</td>
      <td data-label="Parked party">${te(e)}</td>
      <td data-label="Parker">${e.parker||"–"}</td>
      <td data-label="For" class="num" data-testid="parked-for">${Ue(Math.max(0,t-e.parked_at))}</td>
      <td data-label="Recall in" class="num">${e.state==="recalling"?"now":Ue(c)}</td>
      <td data-label="Stage" class="num">${e.recall_stage}</td>
      <td data-label="State"><span class=${`badge ${e.state}`} data-testid="call-state">${e.state}</span></td>
      <td data-label="Actions" class="actions">
        <button type="button" onClick=${()=>n(`Recall of call ${e.id} started`,"POST",`/api/parked/${e.id}/recall`)}
          aria-label=${`Recall call ${e.id} on ${ee(e)} now`}>Recall now</button>
        ${l?f`<button type="button" class="danger" onClick=${()=>{i(!1),n(`Call ${e.id} hung up`,"DELETE",`/api/parked/${e.id}`)}}
              aria-label=${`Confirm: hang up call ${e.id}`}>Confirm hang up</button>
             <button type="button" class="secondary" onClick=${()=>i(!1)}>Keep</button>`:f`<button type="button" class="danger" onClick=${()=>i(!0)} aria-label=${`Hang up call ${e.id}`}>Hang up</button>`}
        <button type="button" class="secondary" onClick=${()=>a(!r)} aria-expanded=${r}
          aria-label=${`Move call ${e.id}`}>Move</button>
        ${r&&f`<${wt} call=${e} lots=${o.filter(u=>u.domain===e.domain)} act=${n} onDone=${()=>a(!1)} />`}
      </td>
    </tr>`}function St({calls:e,now:t,act:n,domains:o,lots:r}){var v;const[a,l]=g(""),[i,c]=g(""),[u,_]=g(""),d=e.filter(h=>(!a||h.domain===a)&&(!i||h.lot===i)&&(!u||h.group===u)),s={};for(const h of d)(s[v=h.domain]||(s[v]=[])).push(h);const p=[...new Set(e.map(h=>h.lot).filter(Boolean))],m=[...new Set(e.map(h=>h.group).filter(Boolean))];return f`<section aria-labelledby="parked-h">
    <h2 id="parked-h">Parked calls <span class="count" data-testid="parked-count">${e.length}</span></h2>
    <div class="filters">
      <label for="f-domain">Domain</label><${j} id="f-domain" domains=${o} value=${a} onChange=${l} all />
      <label for="f-lot">Lot</label>
      <select id="f-lot" value=${i} onChange=${h=>c(h.currentTarget.value)}><option value="">any</option>${p.map(h=>f`<option>${h}</option>`)}</select>
      <label for="f-group">Group</label>
      <select id="f-group" value=${u} onChange=${h=>_(h.currentTarget.value)}><option value="">any</option>${m.map(h=>f`<option>${h}</option>`)}</select>
    </div>
    ${d.length===0&&f`<p class="empty">No parked calls.</p>`}
    ${Object.keys(s).sort().map(h=>f`
      <h3>${h}</h3>
      <div class="table-wrap">
        <table class="calls" aria-label=${`Parked calls in ${h}`}>
          <thead><tr><th scope="col">Parked on</th><th scope="col">Parked party</th><th scope="col">Parker</th><th scope="col">For</th>
            <th scope="col">Recall in</th><th scope="col">Stage</th><th scope="col">State</th><th scope="col">Actions</th></tr></thead>
          <tbody>${s[h].map(y=>f`<${xt} key=${y.id} c=${y} now=${t} act=${n} lots=${r} />`)}</tbody>
        </table>
      </div>`)}
  </section>`}function Tt({api:e,calls:t,act:n,domains:o}){const[r,a]=q(()=>e("GET","/api/lots"),[]),[l,i]=g({domain:o[0]||"",name:"",first:"",last:"",choice:"first"}),c=r.value?.lots||[],u=async d=>{d.preventDefault();const s={first:Number(l.first),last:Number(l.last),choice:l.choice};await n(`Lot ${l.name} saved`,"PUT",`/api/lots/${C(l.domain)}/${C(l.name)}`,s)&&a()},_=d=>s=>i({...l,[d]:s.currentTarget.value});return f`<section aria-labelledby="lots-h">
    <h2 id="lots-h">Lots</h2>
    ${r.error&&f`<p class="error" role="alert">${r.error.message}</p>`}
    ${c.length===0&&!r.loading&&f`<p class="empty">No lots.</p>`}
    ${c.map(d=>{const s=[];for(let p=d.first_slot;p<=d.last_slot&&s.length<500;p++){const m=t.find(h=>h.domain===d.domain&&h.lot===d.name&&h.slot===p),v=m?m.state==="recalling"?"recalling":"occupied":"free";s.push(f`<li class=${`slot ${v}`} aria-label=${`Slot ${p}: ${v}${m?`, ${te(m)}`:""}`} title=${m?te(m):"free"}>
          <span class="slot-no">${p}</span><span class="slot-who">${m?m.parked_display||m.parked_uri:"free"}</span></li>`)}return f`<article class="card">
        <header class="card-h"><h3>${d.name} <span class="hint">${d.domain} · ${d.first_slot}–${d.last_slot} · ${d.choice}</span></h3>
          <button type="button" class="danger" onClick=${async()=>{await n(`Lot ${d.name} deleted`,"DELETE",`/api/lots/${C(d.domain)}/${C(d.name)}`)&&a()}}
            aria-label=${`Delete lot ${d.name}`}>Delete</button></header>
        <ul class="slots" aria-label=${`Slots of lot ${d.name}`}>${s}</ul>
      </article>`})}
    <form class="card form narrow" onSubmit=${u} aria-labelledby="lot-form-h">
      <h3 id="lot-form-h">Add or change a lot</h3>
      <label for="lot-domain">Domain</label><${j} id="lot-domain" domains=${o} value=${l.domain} onChange=${d=>i({...l,domain:d})} />
      <label for="lot-name">Name</label><input id="lot-name" required value=${l.name} onInput=${_("name")} />
      <label for="lot-first">First slot</label><input id="lot-first" required inputmode="numeric" value=${l.first} onInput=${_("first")} />
      <label for="lot-last">Last slot</label><input id="lot-last" required inputmode="numeric" value=${l.last} onInput=${_("last")} />
      <label for="lot-choice">Slot choice</label>
      <select id="lot-choice" value=${l.choice} onChange=${_("choice")}><option value="first">first free</option><option value="next">next free</option></select>
      <button type="submit">Save lot</button>
    </form>
  </section>`}function Dt({g:e,calls:t,act:n,onSaved:o}){const[r,a]=g(e.members),[l,i]=g(""),[c,u]=g(null),[_,d]=g(""),s=ge(null);R(()=>a(e.members),[e]);const p=r.join(`
`)!==e.members.join(`
`),m=($,b)=>{if(b<0||b>=r.length||$===b)return;const E=r.slice(),[k]=E.splice($,1);E.splice(b,0,k),a(E),d(`${k} moved to position ${b+1} of ${E.length}`),requestAnimationFrame(()=>s.current?.querySelectorAll("li")[b]?.focus())},v=$=>b=>{b.altKey&&b.key==="ArrowUp"?(b.preventDefault(),m($,$-1)):b.altKey&&b.key==="ArrowDown"?(b.preventDefault(),m($,$+1)):b.key==="Delete"&&(b.preventDefault(),a(r.filter((E,k)=>k!==$)))},h=async()=>{const $=e.settings||{},b={members:r,notify_parker:e.notify_parker};$.recall_seconds&&(b.recall_time=$.recall_seconds),$.mode&&(b.recall_mode=$.mode),$.alternate&&(b.alternate=$.alternate),$.occupied&&(b.occupied_policy=$.occupied),await n(`Group ${e.name} saved`,"PUT",`/api/groups/${C(e.domain)}/${C(e.name)}`,b)&&o()},y=`group-${e.domain}-${e.name}-hint`;return f`<article class="card" data-group=${e.name}>
    <header class="card-h"><h3>${e.name} <span class="hint">${e.domain}</span></h3>
      <button type="button" class="danger" aria-label=${`Delete group ${e.name}`}
        onClick=${async()=>{await n(`Group ${e.name} deleted`,"DELETE",`/api/groups/${C(e.domain)}/${C(e.name)}`)&&o()}}>Delete</button></header>
    <p id=${y} class="hint">Hunting order, first member first. Drag a member, or focus it and press Alt+↑ / Alt+↓; Delete removes it.</p>
    <ol class="members" ref=${s} aria-describedby=${y} aria-label=${`Members of group ${e.name}`}>
      ${r.map(($,b)=>{const E=t.filter(k=>k.domain===e.domain&&k.extension===$&&!k.lot);return f`<li key=${$} tabindex="0" draggable="true" data-member=${$}
            aria-label=${`${$}, position ${b+1} of ${r.length}${E.length?`, ${E.length} parked`:""}`}
            class=${c===b?"dragging":""}
            onKeyDown=${v(b)}
            onDragStart=${k=>{u(b),k.dataTransfer.effectAllowed="move",k.dataTransfer.setData("text/plain",$)}}
            onDragOver=${k=>k.preventDefault()}
            onDrop=${k=>{k.preventDefault(),c!==null&&m(c,b),u(null)}}
            onDragEnd=${()=>u(null)}>
          <span class="grip" aria-hidden="true">⋮⋮</span>
          <span class="member">${$}</span>
          <span class="parked-here">${E.map(k=>f`<span class="tag">${k.parked_display||k.parked_uri} · ${k.state}</span>`)}</span>
          <span class="reorder">
            <button type="button" class="icon" aria-label=${`Move ${$} up`} disabled=${b===0} onClick=${()=>m(b,b-1)}>↑</button>
            <button type="button" class="icon" aria-label=${`Move ${$} down`} disabled=${b===r.length-1} onClick=${()=>m(b,b+1)}>↓</button>
            <button type="button" class="icon" aria-label=${`Remove ${$}`} onClick=${()=>a(r.filter((k,I)=>I!==b))}>✕</button>
          </span>
        </li>`})}
    </ol>
    <p class="sr-only" aria-live="polite">${_}</p>
    <form class="inline" onSubmit=${$=>{$.preventDefault(),l.trim()&&!r.includes(l.trim())&&a([...r,l.trim()]),i("")}}>
      <label for=${`add-${e.domain}-${e.name}`}>Add member</label>
      <input id=${`add-${e.domain}-${e.name}`} size="8" value=${l} onInput=${$=>i($.currentTarget.value)} />
      <button type="submit" class="secondary">Add</button>
    </form>
    <div class="buttons">
      <button type="button" onClick=${h} disabled=${!p}>Save group</button>
      <button type="button" class="secondary" onClick=${()=>a(e.members)} disabled=${!p}>Undo changes</button>
    </div>
  </article>`}function tt({api:e,domains:t,rulesText:n,idPrefix:o}){const[r,a]=g(t[0]||""),[l,i]=g(""),[c,u]=g("*58"),[_,d]=g(null),[s,p]=g(null),[m,v]=g("");return R(()=>{!r&&t[0]&&a(t[0])},[t]),f`<form class="card form" onSubmit=${async y=>{y.preventDefault(),v("");try{d(await e("GET",`/api/explain?domain=${C(r)}&caller=${C(l)}&dial=${C(c)}`)),p(n!==void 0?(await e("POST","/api/rules/check",{text:n,domain:r,caller:l,dial:c})).explain:null)}catch($){d(null),p(null),v($.message)}}} aria-labelledby=${`${o}-h`}>
    <h3 id=${`${o}-h`}>Explain a dial string</h3>
    <label for=${`${o}-domain`}>Domain</label><${j} id=${`${o}-domain`} domains=${t} value=${r} onChange=${a} />
    <label for=${`${o}-caller`}>Caller</label><input id=${`${o}-caller`} value=${l} onInput=${y=>i(y.currentTarget.value)} placeholder="1001" />
    <label for=${`${o}-dial`}>Dial</label><input id=${`${o}-dial`} required value=${c} onInput=${y=>u(y.currentTarget.value)} />
    <button type="submit">Explain</button>
    ${m&&f`<p class="error" role="alert">${m}</p>`}
    ${s&&f`<h4>With the edited rules (not applied yet)</h4><${Re} ex=${s} />`}
    ${_&&f`<h4>${n!==void 0?"With the rules in force":"Result"}</h4><div data-testid=${`${o}-result`}><${Re} ex=${_} /></div>`}
  </form>`}function Ct({api:e,calls:t,act:n,domains:o}){const[r,a]=q(()=>e("GET","/api/groups"),[]),[l,i]=g({domain:o[0]||"",name:"",members:""}),c=r.value?.groups||[],u=async _=>{_.preventDefault();const d=l.members.split(/[\s,]+/).filter(Boolean);await n(`Group ${l.name} saved`,"PUT",`/api/groups/${C(l.domain)}/${C(l.name)}`,{members:d})&&(i({...l,name:"",members:""}),a())};return f`<section aria-labelledby="groups-h">
    <h2 id="groups-h">Groups</h2>
    ${r.error&&f`<p class="error" role="alert">${r.error.message}</p>`}
    <div class="grid">
      ${c.map(_=>f`<${Dt} key=${`${_.domain}/${_.name}`} g=${_} calls=${t} act=${n} onSaved=${a} />`)}
      <form class="card form" onSubmit=${u} aria-labelledby="new-group-h">
        <h3 id="new-group-h">New group</h3>
        <label for="ng-domain">Domain</label><${j} id="ng-domain" domains=${o} value=${l.domain} onChange=${_=>i({...l,domain:_})} />
        <label for="ng-name">Name</label><input id="ng-name" required value=${l.name} onInput=${_=>i({...l,name:_.currentTarget.value})} />
        <label for="ng-members">Members (in order)</label><input id="ng-members" value=${l.members} placeholder="1001 1002 1003" onInput=${_=>i({...l,members:_.currentTarget.value})} />
        <button type="submit">Create group</button>
      </form>
      <${tt} api=${e} domains=${o} idPrefix="gexplain" />
    </div>
  </section>`}function Et({api:e,act:t,domains:n}){const[o,r]=q(()=>e("GET","/api/rules"),[]),[a,l]=g(null),[i,c]=g(null),u=o.value?vt(o.value.rules):"",_=a??u,d=async()=>{c(null);try{const v=await e("POST","/api/rules/check",{text:_});c({ok:!0,text:`Valid: ${v.rules} rule${v.rules===1?"":"s"}. Not applied yet.`})}catch(v){c({ok:!1,text:v.message})}},s=async()=>{c(null),await t("Rules applied","POST","/api/rules",{text:_,replace:!0})&&(l(null),r())},p=ge(!1),m=v=>{if(v.key==="Escape"){p.current=!0;return}if(v.key==="Tab"&&!p.current&&!v.shiftKey){v.preventDefault();const h=v.currentTarget,{selectionStart:y,selectionEnd:$}=h,b=h.value.slice(0,y)+"	"+h.value.slice($);l(b),requestAnimationFrame(()=>{h.selectionStart=h.selectionEnd=y+1})}p.current=!1};return f`<section aria-labelledby="rules-h">
    <h2 id="rules-h">Dialplan rules</h2>
    ${o.error&&f`<p class="error" role="alert">${o.error.message}</p>`}
    <div class="grid wide">
      <div class="card form">
        <label for="rules-text">Stored rules, rules-file format (TAB-separated; docs/engine.md). The default feature codes need no rule.</label>
        <p id="rules-hint" class="hint">Tab types a TAB; press Escape then Tab to leave the editor. Apply replaces every stored rule at once.</p>
        <textarea id="rules-text" aria-describedby="rules-hint" spellcheck="false" rows="12" value=${_}
          onInput=${v=>{l(v.currentTarget.value),c(null)}} onKeyDown=${m}></textarea>
        <div class="buttons">
          <button type="button" onClick=${d}>Validate</button>
          <button type="button" onClick=${s} disabled=${a===null||a===u}>Apply</button>
          <button type="button" class="secondary" onClick=${()=>{l(null),c(null)}} disabled=${a===null}>Discard edits</button>
        </div>
        ${i&&f`<p class=${i.ok?"ok":"error"} role=${i.ok?"status":"alert"} data-testid="rules-check">${i.text}</p>`}
      </div>
      <${tt} api=${e} domains=${n} rulesText=${_} idPrefix="rexplain" />
    </div>
  </section>`}const Le=[["park_code","Park code","text"],["group_park_code","Group park code","text"],["retrieve_code","Retrieve code","text"],["recall_time","Recall after (s)","number"],["max_parked","Max parked (0 = no cap)","number"],["max_parked_per_extension","Max per extension (0 = no cap)","number"]];function At({d:e,act:t,onSaved:n}){const o=()=>({park_code:e.park_code,group_park_code:e.group_park_code,retrieve_code:e.retrieve_code,recall_time:e.recall?.recall_seconds??"",max_parked:e.max_parked??0,max_parked_per_extension:e.max_parked_per_extension??0,occupied_policy:e.occupied,recall_mode:e.recall?.mode}),[r,a]=g(o);R(()=>a(o()),[e]);const l=c=>`dom-${e.name}-${c}`;return f`<form class="card form" onSubmit=${async c=>{c.preventDefault();const u={...r};for(const[_,,d]of Le)d==="number"&&(u[_]=Number(u[_]));await t(`Domain ${e.name} saved`,"PUT",`/api/domains/${C(e.name)}`,u)&&n()}} aria-label=${`Settings of ${e.name}`}>
    <h3>${e.name}</h3>
    ${Le.map(([c,u,_])=>f`<label for=${l(c)}>${u}</label>
      <input id=${l(c)} type=${_} value=${r[c]} onInput=${d=>a({...r,[c]:d.currentTarget.value})} />`)}
    <label for=${l("occ")}>When the extension is occupied</label>
    <select id=${l("occ")} value=${r.occupied_policy} onChange=${c=>a({...r,occupied_policy:c.currentTarget.value})}>
      <option value="stack">stack</option><option value="reject">reject</option></select>
    <label for=${l("mode")}>Recall mode</label>
    <select id=${l("mode")} value=${r.recall_mode} onChange=${c=>a({...r,recall_mode:c.currentTarget.value})}>
      <option value="parker">parker</option><option value="parker_then_alternate">parker, then alternate</option>
      <option value="alternate_only">alternate only</option></select>
    <button type="submit">Save ${e.name}</button>
  </form>`}function Nt({api:e,act:t,onChanged:n}){const[o,r]=q(()=>e("GET","/api/domains"),[]),a=()=>{r(),n()};return f`<section aria-labelledby="domains-h">
    <h2 id="domains-h">Domains</h2>
    ${o.error&&f`<p class="error" role="alert">${o.error.message}</p>`}
    <div class="grid">${(o.value?.domains||[]).map(l=>f`<${At} key=${l.name} d=${l} act=${t} onSaved=${a} />`)}</div>
  </section>`}function Pt({api:e,act:t,domains:n}){const[o,r]=g(n[0]||""),[a,l]=q(()=>o?e("GET",`/api/users/${C(o)}`):Promise.resolve([]),[o]),[i,c]=g({user:"",password:"",register_for:""}),u=async d=>{d.preventDefault();const s={password:i.password,register_for:i.register_for.split(/[\s,]+/).filter(Boolean)};await t(`User ${i.user} saved`,"PUT",`/api/users/${C(o)}/${C(i.user)}`,s)&&(c({user:"",password:"",register_for:""}),l())},_=Array.isArray(a.value)?a.value:[];return f`<section aria-labelledby="users-h">
    <h2 id="users-h">SIP users</h2>
    <div class="filters"><label for="u-domain">Domain</label><${j} id="u-domain" domains=${n} value=${o} onChange=${r} /></div>
    ${a.error&&f`<p class="error" role="alert">${a.error.message}</p>`}
    <div class="table-wrap"><table aria-label=${`Users of ${o}`}>
      <thead><tr><th scope="col">User</th><th scope="col">May register for</th><th scope="col">Hashes</th><th scope="col">Actions</th></tr></thead>
      <tbody>${_.map(d=>f`<tr><td>${d.user}</td><td>${(d.register_for||[]).join(", ")||"–"}</td><td>${(d.algorithms||[]).join(", ")}</td>
        <td><button type="button" class="danger" aria-label=${`Delete user ${d.user}`}
          onClick=${async()=>{await t(`User ${d.user} deleted`,"DELETE",`/api/users/${C(o)}/${C(d.user)}`)&&l()}}>Delete</button></td></tr>`)}</tbody>
    </table></div>
    ${_.length===0&&!a.loading&&!a.error&&f`<p class="empty">No users in ${o}.</p>`}
    <form class="card form narrow" onSubmit=${u} aria-labelledby="user-form-h">
      <h3 id="user-form-h">Add a user or change a password</h3>
      <label for="u-user">User</label><input id="u-user" required value=${i.user} onInput=${d=>c({...i,user:d.currentTarget.value})} />
      <label for="u-pass">Password</label><input id="u-pass" type="password" autocomplete="new-password" required value=${i.password} onInput=${d=>c({...i,password:d.currentTarget.value})} />
      <label for="u-for">May register for (other users)</label><input id="u-for" value=${i.register_for} onInput=${d=>c({...i,register_for:d.currentTarget.value})} />
      <button type="submit">Save user</button>
    </form>
  </section>`}function Mt({events:e}){return f`<section aria-labelledby="events-h">
    <h2 id="events-h">Recent events</h2>
    ${e.length===0&&f`<p class="empty">No events since this page opened.</p>`}
    <ol class="events" reversed>
      ${e.map(t=>f`<li key=${t.seq}><time>${new Date(t.at).toLocaleTimeString()}</time>
        <span class=${`badge ${t.type}`}>${t.type}</span>
        <span>${t.call?`call ${t.call.id} · ${t.call.domain} · ${ee(t.call)} · ${te(t.call)}${t.call.parker?` · parker ${t.call.parker}`:""}`:""}</span></li>`)}
    </ol>
  </section>`}function It({token:e,onLogout:t,onRefused:n}){const o=ye(()=>ft(e,n),[e]),[r,a]=g(()=>new URLSearchParams(location.hash.slice(1)).get("view")||"parked"),[l,i]=g(new Map),[c,u]=g([]),[_,d]=g("connecting"),[s,p]=g(null),[m,v]=g(Date.now()),[h,y]=g([]),[$,b]=g([]),E=ge(new Set),k=de(()=>{o("GET","/api/domains").then(w=>y(w.domains.map(x=>x.name)),()=>{}),o("GET","/api/lots").then(w=>b(w.lots),()=>{})},[o]);R(k,[k]),R(()=>{const w=setInterval(()=>v(Date.now()),1e3);return()=>clearInterval(w)},[]),R(()=>mt({token:e,onStatus:w=>{d(w),w==="unauthorized"&&n()},onOpen:()=>{o("GET","/api/parked").then(w=>i(x=>{const N=new Map;for(const A of w.parked){if(E.current.has(A.id))continue;const P=x.get(A.id);N.set(A.id,P&&P.version>A.version?P:A)}return N}),w=>p({kind:"error",text:w.message}))},onEvent:(w,x,N)=>{if(!x||!x.call)return;const A=x.call;v(Date.now()),i(P=>{const re=new Map(P);if(A.state==="gone"||w==="retrieved"||w==="abandoned")re.delete(A.id),E.current.add(A.id);else{const le=P.get(A.id);(!le||!(le.version>A.version))&&re.set(A.id,{...le,...A})}return re}),u(P=>[{seq:Number(N)||x.sequence,type:w,at:x.at||Date.now(),call:A},...P].slice(0,100))}}),[e]);const I=de(async(w,x,N,A)=>{try{return await o(x,N,A),p({kind:"ok",text:w}),!0}catch(P){return p({kind:"error",text:P instanceof fe?P.message:String(P)}),!1}},[o]),F=[...l.values()].sort((w,x)=>w.parked_at-x.parked_at),M={api:o,act:I,domains:h,calls:F,now:m,lots:$};return f`
    <header class="top">
      <h1>Parkway</h1>
      <p class=${`status ${_}`} role="status" data-testid="stream-status">${_==="live"?"live":_}</p>
      <button type="button" class="secondary" onClick=${t}>Sign out</button>
    </header>
    <nav aria-label="Views"><ul class="tabs">
      ${ht.map(([w,x])=>f`<li><button type="button" aria-current=${r===w?"page":void 0}
        class=${r===w?"tab active":"tab"} onClick=${()=>a(w)}>${x}${w==="parked"?` (${F.length})`:""}</button></li>`)}
    </ul></nav>
    <${yt} notice=${s} onClose=${()=>p(null)} />
    <main>
      ${r==="parked"&&f`<${St} ...${M} />`}
      ${r==="lots"&&f`<${Tt} ...${M} />`}
      ${r==="groups"&&f`<${Ct} ...${M} />`}
      ${r==="rules"&&f`<${Et} ...${M} />`}
      ${r==="domains"&&f`<${Nt} ...${M} onChanged=${k} />`}
      ${r==="users"&&f`<${Pt} ...${M} />`}
      ${r==="events"&&f`<${Mt} events=${c} />`}
    </main>`}function Ut(){const[e,t]=g(pt),[n,o]=g(!1);return e?f`<${It} key=${e} token=${e}
    onLogout=${()=>{ue(""),t("")}}
    onRefused=${()=>{ue(""),o(!0),t("")}} />`:f`<${gt} refused=${n} onToken=${r=>{ue(r),o(!1),t(r)}} />`}it(f`<${Ut} />`,document.getElementById("app"));
